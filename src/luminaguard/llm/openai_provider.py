"""OpenAI-compatible chat completions on the official ``openai`` SDK: OpenAI,
Ollama, vLLM, llama.cpp server, LM Studio. Streaming, several tool calls per
turn. The SDK's own retries are off: the router is the only retry loop."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from luminaguard.errors import ProviderError
from luminaguard.llm.wire import (
    LoopClients,
    NameMap,
    openai_messages,
    openai_tools,
    sdk_error,
    tool_calls_from,
)
from luminaguard.messages import AssistantTurn, Message, ToolSpec, Usage


class OpenAIProvider:
    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str,
        api_key: str,
        timeout_s: float = 120.0,
        provider_name: str = "openai",
    ) -> None:
        self.model = model
        self.name = provider_name
        import openai

        self._sdk = openai

        # SDK retries off: the router is the only retry loop.
        self._clients = LoopClients(
            openai.AsyncOpenAI, base_url=base_url, api_key=api_key, max_retries=0, timeout=timeout_s
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
        request: dict[str, Any] = {
            "model": self.model,
            "messages": openai_messages(messages, names),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if tools:
            request["tools"] = openai_tools(tools, names)
        if max_tokens is not None:
            request["max_tokens"] = max_tokens
        started = time.monotonic()
        ttft: float | None = None
        text: list[str] = []
        calls: dict[int, list[str]] = {}
        finish = "stop"
        usage = Usage()
        try:
            stream = await self._clients.get().chat.completions.create(**request)
            async for chunk in stream:
                if chunk.usage is not None:
                    usage = Usage(
                        chunk.usage.prompt_tokens or 0, chunk.usage.completion_tokens or 0
                    )
                for choice in chunk.choices:
                    delta = choice.delta
                    if delta is not None and delta.content:
                        ttft = ttft if ttft is not None else time.monotonic() - started
                        text.append(delta.content)
                        if on_text is not None:
                            on_text(delta.content)
                    for tc in (delta.tool_calls if delta is not None else None) or []:
                        ttft = ttft if ttft is not None else time.monotonic() - started
                        slot = calls.setdefault(tc.index, ["", "", ""])
                        if tc.id:
                            slot[0] = tc.id
                        if tc.function is not None and tc.function.name:
                            slot[1] += tc.function.name
                        if tc.function is not None and tc.function.arguments:
                            slot[2] += tc.function.arguments
                    if choice.finish_reason:
                        finish = choice.finish_reason
        except ProviderError:
            raise
        except Exception as exc:
            raise sdk_error(exc, self._sdk) from exc
        raw = [(c[0] or f"call_{i}", c[1], c[2]) for i, c in sorted(calls.items())]
        return AssistantTurn(
            content="".join(text) or None,
            tool_calls=tool_calls_from(raw, names),
            usage=usage,
            stop_reason=finish,
            model=self.model,
            ttft_s=ttft,
            provider=self.name,
        )
