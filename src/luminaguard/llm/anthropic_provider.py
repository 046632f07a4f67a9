"""Anthropic messages, streamed, with tool use. The wire format is spoken
directly (``wire.events``); no retries here: the router is the only retry loop."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from luminaguard.llm.wire import (
    LoopClients,
    NameMap,
    anthropic_messages,
    anthropic_tools,
    events,
    tool_calls_from,
)
from luminaguard.messages import AssistantTurn, Message, ToolSpec, Usage

API_VERSION = "2023-06-01"
DEFAULT_BASE_URL = "https://api.anthropic.com"
STOP_REASONS = {
    "end_turn": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "stop_sequence": "stop",
}


class AnthropicProvider:
    name = "anthropic"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None,
        api_key: str,
        timeout_s: float = 120.0,
        max_tokens: int = 4096,
    ) -> None:
        self.model = model
        self.max_tokens = max_tokens
        self._url = (base_url or DEFAULT_BASE_URL).rstrip("/") + "/v1/messages"
        self._headers = {"x-api-key": api_key, "anthropic-version": API_VERSION}
        self._clients = LoopClients(timeout_s)

    async def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec],
        *,
        task_type: str = "act",
        on_text: Callable[[str], None] | None = None,
        max_tokens: int | None = None,
    ) -> AssistantTurn:
        names = NameMap(tools)
        system, wire = anthropic_messages(messages, names)
        request: dict[str, Any] = {
            "model": self.model,
            "max_tokens": min(self.max_tokens, max_tokens or self.max_tokens),
            "messages": wire,
            "stream": True,
        }
        if system:
            request["system"] = system
        if tools:
            request["tools"] = anthropic_tools(tools, names)
        started = time.monotonic()
        ttft: float | None = None
        text: list[str] = []
        blocks: dict[int, list[str]] = {}
        stop = "end_turn"
        tokens_in = tokens_out = 0
        async for name, event in events(self._clients, self._url, self._headers, request):
            kind = event.get("type", name)
            if kind == "message_start":
                tokens_in = ((event.get("message") or {}).get("usage") or {}).get(
                    "input_tokens"
                ) or 0
            elif kind == "content_block_start":
                block = event.get("content_block") or {}
                if block.get("type") == "tool_use":
                    blocks[int(event.get("index", 0))] = [
                        block.get("id", ""),
                        block.get("name", ""),
                        "",
                    ]
            elif kind == "content_block_delta":
                ttft = ttft if ttft is not None else time.monotonic() - started
                delta = event.get("delta") or {}
                if delta.get("type") == "text_delta":
                    text.append(delta.get("text", ""))
                    if on_text is not None:
                        on_text(delta.get("text", ""))
                elif delta.get("type") == "input_json_delta":
                    slot = blocks.setdefault(int(event.get("index", 0)), ["", "", ""])
                    slot[2] += delta.get("partial_json", "")
            elif kind == "message_delta":
                stop = (event.get("delta") or {}).get("stop_reason") or stop
                tokens_out = (event.get("usage") or {}).get("output_tokens") or tokens_out
        raw = [(b[0], b[1], b[2]) for _, b in sorted(blocks.items())]
        return AssistantTurn(
            content="".join(text) or None,
            tool_calls=tool_calls_from(raw, names),
            usage=Usage(tokens_in, tokens_out),
            stop_reason=STOP_REASONS.get(stop, stop),
            model=self.model,
            ttft_s=ttft,
            provider=self.name,
        )
