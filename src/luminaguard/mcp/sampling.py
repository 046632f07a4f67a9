"""Sampling: an MCP server asks LuminaGuard's model for a completion.

Off unless the server's config says `sampling = true` (only then is the
capability declared). Each request is an action like any other: it goes
through the Approval Cliff as `sampling:<server>` (YELLOW: it changes nothing
on the machine, but spends tokens and sends the server's text to the model
provider), with the exact request on its Diff Card, and lands in the journal.
An approved request is answered by the run's provider (the router, so
`[router.routes] sampling = ...` can send it to a cheaper model), its tokens
and cost counted against the run's budgets and limits. A denied one is an
error answer to the server.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from luminaguard.core.risk import Assessment, Risk
from luminaguard.messages import AssistantTurn, Message, ToolCall, ToolResult, ToolSpec
from luminaguard.protocols import Prepared, Provider

TASK_TYPE = "sampling"


def _text(content: Any) -> str:
    blocks = content if isinstance(content, list) else [content]
    parts = []
    for block in blocks:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        else:
            parts.append(f"[{kind} content not passed on]")
    return "\n".join(parts)


def request_arguments(params: Any) -> dict[str, Any]:
    """The sampling request as the arguments of a `sampling:<server>` call."""
    return {
        "system_prompt": params.system_prompt,
        "messages": [{"role": m.role, "text": _text(m.content)} for m in params.messages],
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        "stop_sequences": params.stop_sequences,
        "include_context": params.include_context,
    }


class SamplingSource:
    """A `ToolSource` for one server's sampling requests (never offered to the model)."""

    def __init__(
        self,
        server: str,
        provider: Provider,
        account: Callable[[AssistantTurn], None] | None = None,
    ) -> None:
        self.server = server
        self.name = f"sampling:{server}"
        self.provider = provider
        self.account = account

    def specs(self) -> Sequence[ToolSpec]:
        return []

    def assess(self, call: ToolCall) -> Assessment:
        args = call.arguments if isinstance(call.arguments, dict) else {}
        count = len(args.get("messages") or [])
        return Assessment.of(
            Risk.YELLOW,
            "mcp-sampling",
            f"MCP server {self.server} asks the model for a completion ({count} messages, up to "
            f"{args.get('max_tokens')} tokens): it spends tokens and sends this text to the model provider",
        )

    async def prepare(self, call: ToolCall, *, live: bool = False) -> Prepared:
        request = {"server": self.server, "method": "sampling/createMessage", **call.arguments}
        return Prepared(call, "request", request=request)

    async def apply(self, prepared: Prepared) -> ToolResult:
        return await self.call(prepared.call)

    def discard(self, prepared: Prepared) -> None:
        pass

    async def update(self) -> bool:
        """A fixed set of tools: never changes."""
        return False

    async def call(self, call: ToolCall) -> ToolResult:
        args = call.arguments
        messages = [Message("system", args["system_prompt"])] if args.get("system_prompt") else []
        messages += [Message(m["role"], m["text"]) for m in args["messages"]]
        turn = await self.provider.complete(
            messages, [], task_type=TASK_TYPE, max_tokens=args.get("max_tokens")
        )
        if self.account is not None:
            self.account(turn)
        return ToolResult(
            turn.content or "",
            data={
                "model": turn.model or self.provider.name,
                "stop_reason": turn.stop_reason,
                "usage": {
                    "input_tokens": turn.usage.input_tokens,
                    "output_tokens": turn.usage.output_tokens,
                },
            },
        )


def sampler(
    source: SamplingSource, run: Callable[[ToolCall, SamplingSource], Awaitable[ToolResult]]
) -> Callable[[Any], Awaitable[Any]]:
    """The handle's answer to `sampling/createMessage`: the request gated by
    ``run`` (the ApprovalManager), then the result or an error for the server."""
    ids = itertools.count(1)

    async def sample(params: Any) -> Any:
        from mcp import types

        call = ToolCall(f"{source.name}#{next(ids)}", source.name, request_arguments(params))
        result = await run(call, source)
        if result.is_error:
            return types.ErrorData(code=types.INVALID_REQUEST, message=result.output)
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=result.output),
            model=result.data.get("model", source.provider.name),
            stop_reason="maxTokens" if result.data.get("stop_reason") == "length" else "endTurn",
        )

    return sample
