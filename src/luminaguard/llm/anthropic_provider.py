"""Anthropic messages on the official ``anthropic`` SDK, streamed, with tool
use. The SDK's own retries are off: the router is the only retry loop."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from luminaguard.errors import ProviderError
from luminaguard.llm.wire import (
    LoopClients,
    NameMap,
    anthropic_messages,
    anthropic_tools,
    sdk_error,
    tool_calls_from,
)
from luminaguard.messages import AssistantTurn, Message, ToolSpec, Usage

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
        import anthropic

        self._sdk = anthropic

        # SDK retries off: the router is the only retry loop.
        self._clients = LoopClients(
            anthropic.AsyncAnthropic,
            base_url=base_url,
            api_key=api_key,
            max_retries=0,
            timeout=timeout_s,
        )

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
        try:
            stream = await self._clients.get().messages.create(**request)
            async for event in stream:
                kind = event.type
                if kind == "message_start":
                    tokens_in = event.message.usage.input_tokens or 0
                elif kind == "content_block_start" and event.content_block.type == "tool_use":
                    blocks[event.index] = [event.content_block.id, event.content_block.name, ""]
                elif kind == "content_block_delta":
                    ttft = ttft if ttft is not None else time.monotonic() - started
                    if event.delta.type == "text_delta":
                        text.append(event.delta.text)
                        if on_text is not None:
                            on_text(event.delta.text)
                    elif event.delta.type == "input_json_delta":
                        blocks.setdefault(event.index, ["", "", ""])[2] += event.delta.partial_json
                elif kind == "message_delta":
                    stop = event.delta.stop_reason or stop
                    tokens_out = event.usage.output_tokens or tokens_out
        except ProviderError:
            raise
        except Exception as exc:
            raise sdk_error(exc, self._sdk) from exc
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
