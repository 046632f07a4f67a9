"""The OpenAI and Anthropic adapters, driven end to end through the real SDK
clients against the scripted provider served over HTTP on loopback."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from luminaguard.errors import (
    BadRequest,
    ContextTooLong,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    ServerError,
)
from luminaguard.llm.anthropic_provider import AnthropicProvider
from luminaguard.llm.openai_provider import OpenAIProvider
from luminaguard.llm.scripted_server import ScriptedServer
from luminaguard.messages import Message, ToolCall, ToolSpec

TOOLS = [
    ToolSpec(
        "read_file",
        "Read a file",
        {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    ),
    ToolSpec(
        "mcp:files/search", "Search", {"type": "object", "properties": {"q": {"type": "string"}}}
    ),
]
TWO_CALLS = {
    "content": "Looking at both.",
    "tool_calls": [
        {"name": "read_file", "arguments": {"path": "README.md"}, "id": "c1"},
        {"name": "mcp__files__search", "arguments": {"q": "needle"}, "id": "c2"},
    ],
    "usage": {"input_tokens": 120, "output_tokens": 30},
}
HISTORY = [
    Message("system", "be brief"),
    Message("user", "go"),
    Message("assistant", None, (ToolCall("c0", "mcp:files/search", {"q": "x"}),)),
    Message("tool", "found", tool_call_id="c0", name="mcp:files/search"),
]


def provider(kind: str, base: str, timeout_s: float = 10) -> Any:
    if kind == "openai":
        return OpenAIProvider("gpt-test", base_url=base + "/v1", api_key="k", timeout_s=timeout_s)
    return AnthropicProvider("claude-test", base_url=base, api_key="k", timeout_s=timeout_s)


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_several_tool_calls_in_one_streamed_turn(kind: str) -> None:
    streamed: list[str] = []
    with ScriptedServer([TWO_CALLS]) as server:
        turn = asyncio.run(
            provider(kind, server.base_url).complete(HISTORY, TOOLS, on_text=streamed.append)
        )
        sent = server.script.requests[0]["body"]
    assert turn.content == "Looking at both." and "".join(streamed) == "Looking at both."
    assert [(c.id, c.name, c.arguments) for c in turn.tool_calls] == [
        ("c1", "read_file", {"path": "README.md"}),
        ("c2", "mcp:files/search", {"q": "needle"}),
    ]
    assert (turn.usage.input_tokens, turn.usage.output_tokens) == (120, 30)
    assert turn.stop_reason == "tool_calls"
    assert turn.ttft_s is not None and turn.ttft_s >= 0
    assert sent["stream"] is True
    wire_names = [t["function"]["name"] if kind == "openai" else t["name"] for t in sent["tools"]]
    assert wire_names == ["read_file", "mcp__files__search"]
    if kind == "openai":
        assert sent["messages"][2]["tool_calls"][0]["function"]["name"] == "mcp__files__search"
        assert sent["messages"][3] == {"role": "tool", "tool_call_id": "c0", "content": "found"}
    else:
        assert sent["system"] == "be brief"
        assert sent["messages"][1]["content"][0]["type"] == "tool_use"
        assert sent["messages"][2]["content"][0] == {
            "type": "tool_result",
            "tool_use_id": "c0",
            "content": "found",
        }


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_a_final_answer_and_malformed_arguments(kind: str) -> None:
    steps = [
        {"tool_calls": [{"name": "read_file", "arguments": "{not json", "id": "c1"}]},
        {"content": "Done."},
    ]
    with ScriptedServer(steps) as server:
        p = provider(kind, server.base_url)
        bad = asyncio.run(p.complete(HISTORY, TOOLS))
        final = asyncio.run(p.complete(HISTORY, TOOLS))
    assert bad.tool_calls[0].arguments == "{not json"
    assert final.content == "Done." and not final.tool_calls and final.stop_reason == "stop"


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"status": 429, "retry_after": 1.5}, RateLimited),
        ({"status": 500}, ServerError),
        ({"status": 503}, ServerError),
        ({"status": 400, "code": "context_length_exceeded"}, ContextTooLong),
        ({"status": 401, "message": "bad key"}, BadRequest),
    ],
)
def test_errors_are_translated_into_ours(
    kind: str, error: dict[str, Any], expected: type[Exception]
) -> None:
    with ScriptedServer([{"error": error}]) as server, pytest.raises(expected) as info:
        asyncio.run(provider(kind, server.base_url).complete(HISTORY, TOOLS))
    if expected is RateLimited:
        assert info.value.retry_after_s == 1.5  # type: ignore[attr-defined]
    assert len(server.script.requests) == 1, "the SDK retried by itself"


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_a_slow_server_is_a_timeout(kind: str) -> None:
    with (
        ScriptedServer([{"content": "late", "delay_ms": 2000}]) as server,
        pytest.raises(ProviderTimeout),
    ):
        asyncio.run(provider(kind, server.base_url, timeout_s=0.3).complete(HISTORY, TOOLS))


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_nothing_listening_is_unavailable(kind: str) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(ProviderUnavailable):
        asyncio.run(provider(kind, f"http://127.0.0.1:{port}").complete(HISTORY, TOOLS))


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_a_requests_max_tokens_goes_on_the_wire(kind: str) -> None:
    reply = {"content": "short"}
    with ScriptedServer([reply, reply]) as server:
        p = provider(kind, server.base_url)
        asyncio.run(p.complete(HISTORY, [], max_tokens=50))
        asyncio.run(p.complete(HISTORY, []))
        bounded, default = (r["body"] for r in server.script.requests)
    assert bounded["max_tokens"] == 50
    if kind == "openai":
        assert "max_tokens" not in default  # the server's own default
    else:
        assert default["max_tokens"] == 4096  # Anthropic requires one: the configured limit
