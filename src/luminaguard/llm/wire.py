"""Our messages in the OpenAI and Anthropic wire formats, and back.

Tool names are sanitised for the wire (OpenAI allows `[a-zA-Z0-9_-]{1,64}`):
``mcp:server/tool`` goes out as ``mcp__server__tool`` and comes back mapped.

Both formats are spoken directly, on one HTTP client (``events``, on
``llm/http.py``): a POST of
JSON answered by server-sent events. The vendors' SDKs are not used: importing
them cost most of a second before the first request (``bench/cli_startup.py``).
Errors (statuses, a dead connection, a timeout, an answer that is not an
event stream) are translated into ours here, in one place.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

from luminaguard.errors import (
    BadRequest,
    ContextTooLong,
    NotHttp,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    ServerError,
)
from luminaguard.llm.http import Client
from luminaguard.messages import Message, ToolCall, ToolSpec

_BAD = re.compile(r"[^a-zA-Z0-9_-]")
CONTEXT_HINTS = (
    "context_length_exceeded",
    "context length",
    "maximum context",
    "prompt is too long",
    "too many tokens",
)


class LoopClients:
    """One HTTP client per running event loop: a connection cannot cross loops."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.clients: dict[int, Client] = {}

    def get(self) -> Client:
        import asyncio

        loop = id(asyncio.get_running_loop())
        if loop not in self.clients:
            for old in self.clients.values():
                old.close()
            self.clients = {loop: Client(self.timeout_s)}
        return self.clients[loop]


async def events(
    clients: LoopClients, url: str, headers: dict[str, str], body: dict[str, Any]
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """POST ``body`` as JSON to ``url``; the answer's server-sent events as
    (event name, data), every failure as one of our ``ProviderError``s."""
    try:
        async with clients.get().post(url, json.dumps(body).encode(), headers) as response:
            if response.status >= 400:
                text = (await response.read()).decode("utf-8", "replace")
                raise status_error(
                    response.status, _error_message(text), response.headers.get("retry-after")
                )
            kind = response.headers.get("content-type", "").split(";")[0].strip()
            if kind != "text/event-stream":
                raise ProviderError(
                    f"{url} answered {kind or 'without a content type'}, not a stream of "
                    "events: is it an OpenAI- or Anthropic-compatible endpoint?"
                )
            name = ""
            async for line in response.lines():
                if not line:
                    name = ""
                elif line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    try:
                        parsed = json.loads(data)
                    except json.JSONDecodeError:
                        raise ProviderError(f"{url} sent an event that is not JSON") from None
                    if not isinstance(parsed, dict):
                        raise ProviderError(f"{url} sent an event that is not a JSON object")
                    if name == "error" or ("error" in parsed and "choices" not in parsed):
                        raise _stream_error(parsed)
                    yield name, parsed
    except TimeoutError as exc:
        raise ProviderTimeout(f"timed out waiting for {url}: {exc or 'no answer'}") from exc
    except (OSError, asyncio.IncompleteReadError) as exc:
        raise ProviderUnavailable(f"cannot connect to {url}: {exc or type(exc).__name__}") from exc
    except NotHttp as exc:
        raise NotHttp(f"{url} answered in a way that is not HTTP: {exc}") from exc
    except ValueError as exc:  # the URL, a header (a key with a line break) or the proxy's
        raise ProviderError(f"cannot send a request to {url}: {exc}") from exc


def _error_message(text: str) -> str:
    """The message of an error body (OpenAI's and Anthropic's shapes), else its text."""
    try:
        body = json.loads(text)
    except json.JSONDecodeError:
        return text.strip()[:300] or "no message"
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return text.strip()[:300]


def _stream_error(data: dict[str, Any]) -> ProviderError:
    """An error sent in the middle of a stream (Anthropic's `overloaded_error`...)."""
    error = data.get("error", data)
    kind = str(error.get("type", "")) if isinstance(error, dict) else ""
    message = str(error.get("message", error)) if isinstance(error, dict) else str(error)
    if kind == "overloaded_error":
        return ServerError(f"server overloaded: {message}")
    if kind == "rate_limit_error":
        return RateLimited(f"rate limited: {message}", None)
    return ServerError(f"the server failed mid-answer: {message}")


class NameMap:
    """Our tool names ↔ names safe for the wire, for one request."""

    def __init__(self, specs: Sequence[ToolSpec]) -> None:
        self.to_wire: dict[str, str] = {}
        self.from_wire: dict[str, str] = {}
        for spec in specs:
            wire = _BAD.sub("_", spec.name.replace(":", "__").replace("/", "__"))
            if len(wire) > 64 or wire in self.from_wire:
                wire = wire[:55] + "_" + hashlib.sha256(spec.name.encode()).hexdigest()[:8]
            self.to_wire[spec.name] = wire
            self.from_wire[wire] = spec.name

    def wire(self, name: str) -> str:
        return self.to_wire.get(name, _BAD.sub("_", name)[:64])

    def ours(self, name: str) -> str:
        return self.from_wire.get(name, name)


def parse_arguments(text: str) -> Any:
    """Arguments as the model sent them: a dict when they are JSON, else the raw text."""
    if not text.strip():
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _arguments_json(args: Any) -> str:
    return args if isinstance(args, str) else json.dumps(args)


# --- OpenAI ----------------------------------------------------------------


def openai_messages(messages: Sequence[Message], names: NameMap) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "assistant":
            msg: dict[str, Any] = {"role": "assistant", "content": m.content}
            if m.tool_calls:
                msg["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {
                            "name": names.wire(c.name),
                            "arguments": _arguments_json(c.arguments),
                        },
                    }
                    for c in m.tool_calls
                ]
            out.append(msg)
        elif m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content or ""})
        else:
            out.append({"role": m.role, "content": m.content or ""})
    return out


def openai_tools(specs: Sequence[ToolSpec], names: NameMap) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {
                "name": names.wire(s.name),
                "description": s.description,
                "parameters": s.parameters,
            },
        }
        for s in specs
    ]


# --- Anthropic -------------------------------------------------------------


def anthropic_messages(
    messages: Sequence[Message], names: NameMap
) -> tuple[str, list[dict[str, Any]]]:
    system = "\n\n".join(m.content or "" for m in messages if m.role == "system")
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        if m.role == "assistant":
            blocks: list[dict[str, Any]] = []
            if m.content:
                blocks.append({"type": "text", "text": m.content})
            for c in m.tool_calls:
                args = c.arguments if isinstance(c.arguments, dict) else {"_raw": c.arguments}
                blocks.append(
                    {"type": "tool_use", "id": c.id, "name": names.wire(c.name), "input": args}
                )
            out.append({"role": "assistant", "content": blocks or [{"type": "text", "text": ""}]})
        elif m.role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": m.tool_call_id,
                "content": m.content or "",
            }
            # Consecutive tool results belong in one user turn.
            if (
                out
                and out[-1]["role"] == "user"
                and isinstance(out[-1]["content"], list)
                and out[-1]["content"]
                and out[-1]["content"][0].get("type") == "tool_result"
            ):
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
        else:
            out.append({"role": "user", "content": m.content or ""})
    return system, out


def anthropic_tools(specs: Sequence[ToolSpec], names: NameMap) -> list[dict[str, Any]]:
    return [
        {"name": names.wire(s.name), "description": s.description, "input_schema": s.parameters}
        for s in specs
    ]


def status_error(status: int, message: str, retry_after: str | None) -> ProviderError:
    if status == 429:
        try:
            seconds = float(retry_after) if retry_after else None
        except ValueError:
            seconds = None
        return RateLimited(f"rate limited (429): {message}", seconds)
    if status >= 500 or status == 529:
        return ServerError(f"server error ({status}): {message}")
    if any(h in message.lower() for h in CONTEXT_HINTS):
        return ContextTooLong(f"context too long ({status}): {message}")
    return BadRequest(f"request refused ({status}): {message}")


def tool_calls_from(raw: list[tuple[str, str, str]], names: NameMap) -> tuple[ToolCall, ...]:
    """(id, wire name, arguments text) → our tool calls."""
    return tuple(ToolCall(cid, names.ours(name), parse_arguments(args)) for cid, name, args in raw)
