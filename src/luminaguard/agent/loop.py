"""The agent loop, short enough to read in one sitting.

run → step → query the model → gate → act → observe, until an outcome is
raised. Every step is journaled before the next one starts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from luminaguard.agent.outcomes import Denied, Failed, Finished, LimitsExceeded, RunEnded
from luminaguard.audit.run import RunRecorder
from luminaguard.errors import PlaybookError, ProviderError, ToolArgumentError, ToolError
from luminaguard.messages import Message, ToolCall, ToolResult, Usage
from luminaguard.policy.gate import ApprovalManager, DeniedAndStop
from luminaguard.protocols import Provider, ToolSource

SYSTEM_PROMPT = """\
You are an agent working on a task in a workspace, using tools. Every tool call \
runs in a sandbox with the workspace at /workspace and no network.

LuminaGuard guards this machine with the Approval Cliff: reads run at once; any \
call with side effects (creating, changing or deleting files, shell commands) is \
shown to a person, or checked against their policy, before it runs. A denial is \
normal: you get the reason as the tool's result. Take it into account and find \
another way, or stop and explain. When the task is done, answer without calling \
a tool."""

Report = Callable[[str, dict[str, Any]], None]


@dataclass
class RunResult:
    run_id: str
    outcome: str
    message: str
    steps: int
    journal: str
    usage: Usage = field(default_factory=Usage)


class Agent:
    def __init__(
        self,
        provider: Provider,
        tools: ToolSource,
        gate: ApprovalManager,
        recorder: RunRecorder,
        *,
        max_steps: int = 30,
        system_prompt: str | None = None,
        report: Report | None = None,
    ) -> None:
        self.provider = provider
        self.tools = tools
        self.gate = gate
        self.recorder = recorder
        self.max_steps = max_steps
        self.messages: list[Message] = [Message("system", system_prompt or SYSTEM_PROMPT)]
        self.steps = 0
        self.tokens_in = 0
        self.tokens_out = 0
        self.report: Report = report or (lambda event, data: None)

    async def run(self, task: str) -> RunResult:
        self.messages.append(Message("user", task))
        self.recorder.record("user", {"content": task})
        try:
            while True:
                await self.step()
        except RunEnded as end:
            outcome = end
        self.recorder.finish(
            outcome.outcome,
            {
                "message": outcome.message,
                "steps": self.steps,
                "input_tokens": self.tokens_in,
                "output_tokens": self.tokens_out,
            },
        )
        self.report("end", {"outcome": outcome.outcome, "message": outcome.message})
        return RunResult(
            self.recorder.run_id,
            outcome.outcome,
            outcome.message,
            self.steps,
            str(self.recorder.path),
            Usage(self.tokens_in, self.tokens_out),
        )

    async def step(self) -> None:
        if self.steps >= self.max_steps:
            raise LimitsExceeded(
                f"the step limit of {self.max_steps} was reached before the task was done"
            )
        self.steps += 1
        started = time.monotonic()
        try:
            turn = await self.provider.complete(self.messages, self.tools.specs())
        except (ProviderError, PlaybookError) as exc:
            self.recorder.record("model_error", {"step": self.steps, "error": str(exc)})
            raise Failed(f"the model could not be queried: {exc}") from exc
        self.tokens_in += turn.usage.input_tokens
        self.tokens_out += turn.usage.output_tokens
        self.recorder.record(
            "model_turn",
            {
                "step": self.steps,
                "model": turn.model,
                "content": turn.content,
                "tool_calls": [c.to_dict() for c in turn.tool_calls],
                "stop_reason": turn.stop_reason,
                "usage": {
                    "input_tokens": turn.usage.input_tokens,
                    "output_tokens": turn.usage.output_tokens,
                },
                "latency_s": round(time.monotonic() - started, 4),
            },
        )
        self.messages.append(turn.as_message())
        if turn.content:
            self.report("model", {"content": turn.content, "final": not turn.tool_calls})
        if not turn.tool_calls:
            raise Finished(turn.content or "")
        for call in turn.tool_calls:
            result = await self.act(call)
            self.messages.append(
                Message("tool", result.output, tool_call_id=call.id, name=call.name)
            )

    async def act(self, call: ToolCall) -> ToolResult:
        """Gate and run one call; every failure the model can act on becomes its observation."""
        known = [spec.name for spec in self.tools.specs()]
        if call.name not in known:
            error = f"error: unknown tool {call.name!r}; available tools: {', '.join(known)}"
            return self._observe(call, ToolResult(error, is_error=True), stage="rejected")
        try:
            result = await self.gate.run(call, self.tools, self.steps)
        except ToolArgumentError as exc:
            return self._observe(call, ToolResult(f"error: {exc}", is_error=True), stage="rejected")
        except ToolError as exc:
            result = ToolResult(f"error: {exc}", is_error=True)
        except DeniedAndStop as exc:
            self._observe(
                call, ToolResult(f"denied: {exc.reason}", is_error=True, data={"denied": True})
            )
            raise Denied(f"{call.name} was denied ({exc.reason}) and the run was ended") from exc
        return self._observe(call, result)

    def _observe(self, call: ToolCall, result: ToolResult, stage: str = "result") -> ToolResult:
        self.recorder.record(
            "tool_result",
            {
                "call_id": call.id,
                "name": call.name,
                "stage": stage,
                "is_error": result.is_error,
                "output": result.output,
                "data": result.data,
            },
        )
        self.report("tool_result", {"call": call, "result": result})
        return result
