"""OpenAI-compatible chat completions: OpenAI, Ollama, vLLM, llama.cpp
server, LM Studio. Streaming, several tool calls per turn. The wire format is
spoken directly (``wire.events``); no retries here: the router is the only
retry loop."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from luminaguard.llm.wire import (
    LoopClients,
    NameMap,
    events,
    openai_messages,
    openai_tools,
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
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._headers = {"Authorization": f"Bearer {api_key}"}
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
        async for _, chunk in events(self._clients, self._url, self._headers, request):
            if chunk.get("usage"):
                u = chunk["usage"]
                usage = Usage(u.get("prompt_tokens") or 0, u.get("completion_tokens") or 0)
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                if delta.get("content"):
                    ttft = ttft if ttft is not None else time.monotonic() - started
                    text.append(delta["content"])
                    if on_text is not None:
                        on_text(delta["content"])
                for tc in delta.get("tool_calls") or []:
                    ttft = ttft if ttft is not None else time.monotonic() - started
                    slot = calls.setdefault(int(tc.get("index", 0)), ["", "", ""])
                    function = tc.get("function") or {}
                    slot[0] = tc.get("id") or slot[0]
                    slot[1] += function.get("name") or ""
                    slot[2] += function.get("arguments") or ""
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
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
