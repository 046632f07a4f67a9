"""The agent loop, short enough to read in one sitting.

run → step → query the model → gate → act → observe, until an outcome is
raised. Every step is journaled before the next one starts, which is also
what lets a run be resumed from its journal (`replay`).

What to do next is decided by pure functions of data — ``over_budget``,
``replay`` (a run's state from its journal), and the gate's ``runs_unasked``,
``make_card``, ``by_policy``, ``settle`` (policy/gate.py) — while ``Agent``
does the I/O around them (model calls, prepare, apply, the journal), so that
another runner (a Temporal workflow) can drive the same decisions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from luminaguard.agent.outcomes import Denied, Failed, Finished, LimitsExceeded, RunEnded
from luminaguard.audit.run import RunRecorder
from luminaguard.errors import (
    DeniedAndStop,
    PlaybookError,
    ProviderError,
    QuotaExceeded,
    ToolArgumentError,
    ToolError,
)
from luminaguard.llm.metrics import ProviderMetrics
from luminaguard.messages import AssistantTurn, Message, ToolCall, ToolResult, Usage
from luminaguard.policy.gate import ApprovalManager
from luminaguard.protocols import Provider, ToolSource

SYSTEM_PROMPT = """\
You are an agent working on a task in a workspace, using tools. Every tool call \
runs in a sandbox with the workspace at /workspace and no network.

LuminaGuard guards this machine with the Approval Cliff: reads run at once; any \
call with side effects (creating, changing or deleting files, shell commands) is \
first run in a throw-away copy of the workspace, and the person (or their policy) \
sees exactly what it would change before it is applied. A denial is normal: you \
get the reason as the tool's result. Take it into account and find another way, \
or stop and explain. When the task is done, answer without calling a tool."""

Report = Callable[[str, dict[str, Any]], None]


@dataclass
class RunResult:
    run_id: str
    outcome: str
    message: str
    steps: int
    journal: str
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0


@dataclass
class Budgets:
    steps: int = 30
    tokens: int | None = None
    cost_usd: float | None = None


class Agent:
    def __init__(
        self,
        provider: Provider,
        tools: ToolSource,
        gate: ApprovalManager,
        recorder: RunRecorder,
        *,
        max_steps: int = 30,
        budgets: Budgets | None = None,
        system_prompt: str | None = None,
        report: Report | None = None,
        metrics: ProviderMetrics | None = None,
        provider_counts_calls: bool = False,
    ) -> None:
        self.provider = provider
        self.tools = tools
        self.gate = gate
        self.recorder = recorder
        self.budgets = budgets or Budgets(steps=max_steps)
        self.metrics = metrics
        self.messages: list[Message] = [Message("system", system_prompt or SYSTEM_PROMPT)]
        self.steps = 0
        self._turn_started = 0
        """``steps`` when the chat's current turn began (0 for a run)."""
        self.tokens_in = 0
        self.tokens_out = 0
        self.cost_usd = 0.0
        self.pending: list[ToolCall] = []
        self._ending: RunEnded | None = None
        self.report: Report = report or (lambda event, data: None)
        # Model-call limits count each request to a provider. A router does
        # that before each attempt (retries and fallbacks included) with the
        # hook of ``model_call_limit``; a plain provider is counted per step.
        self._count_calls = None if provider_counts_calls else model_call_limit(gate, self.report)

    async def run(self, task: str) -> RunResult:
        self.begin(task)
        return await self._loop()

    async def resume(self, records: list[dict[str, Any]]) -> RunResult:
        """Continue a run from its journal: rebuild the conversation, then carry
        out the calls of the last turn that have no recorded result."""
        self.restore(records)
        return await self._loop()

    def begin(self, task: str) -> None:
        """Start a run driven a step at a time (``advance``)."""
        self.messages.append(Message("user", task))
        self.recorder.record("user", {"content": task})

    async def advance(self) -> RunResult | None:
        """One step of a run driven from outside (a fleet workflow runs one per
        activity): the calls still pending, then one model turn and its calls.
        The run's result once it has ended (its journal closed), else None."""
        try:
            calls, self.pending = self.pending, []
            for call in calls:
                await self._act_and_observe(call)
            await self.step()
        except RunEnded as end:
            return self.end(end)
        return None

    def restore(self, records: list[dict[str, Any]]) -> None:
        """Rebuild the run's state from its journal (``replay``); interrupted
        calls are told to the model, pending ones wait in ``pending``."""
        state = replay(records)
        self.messages += state.messages
        self.steps, self.tokens_in, self.tokens_out = state.steps, state.tokens_in, state.tokens_out
        self.cost_usd = state.cost_usd
        for call in state.interrupted:
            self._observe(
                call, ToolResult(INTERRUPTED, is_error=True), stage="interrupted", report=False
            )
            self.messages.append(Message("tool", INTERRUPTED, tool_call_id=call.id, name=call.name))
        self.pending = state.pending
        self.recorder.record(
            "run_resumed", {"steps": self.steps, "pending_calls": [c.id for c in self.pending]}
        )

    async def turn(self, text: str) -> RunEnded:
        """One exchange of a chat: the person's message, then the model's steps
        until it answers (or the turn ends otherwise). The run goes on: the
        next message continues the same conversation and journal. The step
        budget is per turn; tokens and cost count for the whole run."""
        self.messages.append(Message("user", text))
        self.recorder.record("user", {"content": text})
        self._turn_started = self.steps
        return await self._until_ended()

    async def _loop(self) -> RunResult:
        return self.end(await self._until_ended())

    async def _until_ended(self) -> RunEnded:
        try:
            calls, self.pending = self.pending, []
            for call in calls:
                await self._act_and_observe(call)
            while True:
                await self.step()
        except RunEnded as end:
            return end

    def end(self, outcome: RunEnded) -> RunResult:
        """Close the run's journal with ``outcome``."""
        self.recorder.finish(
            outcome.outcome,
            {
                "message": outcome.message,
                "steps": self.steps,
                "input_tokens": self.tokens_in,
                "output_tokens": self.tokens_out,
                "cost_usd": round(self.cost_usd, 6),
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
            round(self.cost_usd, 6),
        )

    def _check_budgets(self) -> None:
        steps = self.steps - self._turn_started
        why = over_budget(self.budgets, steps, self.tokens_in + self.tokens_out, self.cost_usd)
        if why is not None:
            raise LimitsExceeded(why)

    async def step(self) -> None:
        self._check_budgets()
        self.steps += 1
        before = {spec.name for spec in self.tools.specs()}
        if await self.tools.update():
            after = {spec.name for spec in self.tools.specs()}
            added, removed = sorted(after - before), sorted(before - after)
            self.recorder.record("tools_changed", {"added": added, "removed": removed})
            self.report("tools_changed", {"added": added, "removed": removed})
        started = time.monotonic()
        task_type = "plan" if self.steps == 1 else "act"
        if self._count_calls is not None:
            self._count_calls(self.provider.name)
        try:
            turn = await self.provider.complete(
                self.messages,
                self.tools.specs(),
                task_type=task_type,
                on_text=lambda text: self.report("model_delta", {"text": text}),
            )
        except (ProviderError, PlaybookError) as exc:
            self.recorder.record("model_error", {"step": self.steps, "error": str(exc)})
            raise Failed(f"the model could not be queried: {exc}") from exc
        self.count(turn)
        self.recorder.record(
            "model_turn",
            {
                "step": self.steps,
                "model": turn.model,
                "provider": turn.provider,
                "task_type": task_type,
                "content": turn.content,
                "tool_calls": [c.to_dict() for c in turn.tool_calls],
                "stop_reason": turn.stop_reason,
                "usage": {
                    "input_tokens": turn.usage.input_tokens,
                    "output_tokens": turn.usage.output_tokens,
                },
                "cost_usd": turn.cost_usd,
                "latency_s": round(time.monotonic() - started, 4),
            },
        )
        self.messages.append(turn.as_message())
        if turn.content:
            self.report("model", {"content": turn.content, "final": not turn.tool_calls})
        if not turn.tool_calls:
            self._mark(turn, True)
            raise Finished(turn.content or "")
        won = True
        for call in turn.tool_calls:
            won = executed(await self._act_and_observe(call)) and won
        self._mark(turn, won)

    def count(self, turn: AssistantTurn) -> None:
        """Charge a model turn's tokens and cost to the run (budgets, quotas)."""
        self.tokens_in += turn.usage.input_tokens
        self.tokens_out += turn.usage.output_tokens
        self.cost_usd += turn.cost_usd
        spent = {
            "tokens": float(turn.usage.input_tokens + turn.usage.output_tokens),
            "cost_usd": turn.cost_usd,
        }
        self._spend((turn.provider or self.provider.name).split("/")[0], spent)

    async def serve(self, call: ToolCall, source: ToolSource) -> ToolResult:
        """A request a tool's server makes of the run while a call is under way
        (MCP sampling): gated and journaled like a call, never shown to the
        model. A denial that stops the run, or a spent budget, ends the run once
        the call under way returns."""
        try:
            result = await self.gate.run(call, source, self.steps)
        except DeniedAndStop as exc:
            self._ending = Denied(f"{call.name} was denied ({exc.reason}) and the run was ended")
            result = ToolResult(f"denied: {exc.reason}", is_error=True, data={"denied": True})
        except RunEnded as exc:
            self._ending = exc
            result = ToolResult(f"error: {exc}", is_error=True, data={"tool_error": True})
        except (ToolError, ProviderError) as exc:
            result = ToolResult(f"error: {exc}", is_error=True, data={"tool_error": True})
        return self._observe(call, result)

    def _spend(self, name: str, spent: dict[str, float]) -> None:
        """Model quotas (tokens, cost); an exhausted bucket ends the run."""
        try:
            self.gate.spend("models", name, spent)
        except QuotaExceeded as exc:
            self.report("limited", {"message": str(exc)})
            raise LimitsExceeded(str(exc)) from exc

    async def _act_and_observe(self, call: ToolCall) -> ToolResult:
        result = await self.act(call)
        self.messages.append(Message("tool", result.output, tool_call_id=call.id, name=call.name))
        return result

    def _mark(self, turn: AssistantTurn, won: bool) -> None:
        if self.metrics is not None and turn.request_id:
            self.metrics.mark(turn.request_id, won)

    async def act(self, call: ToolCall) -> ToolResult:
        """Gate and run one call; every failure the model can act on becomes its observation."""
        known = [spec.name for spec in self.tools.specs()]
        if call.name not in known:
            error = f"error: unknown tool {call.name!r}; available tools: {', '.join(known)}"
            return self._observe(
                call, ToolResult(error, is_error=True, data={"tool_error": True}), stage="rejected"
            )
        try:
            result = await self.gate.run(call, self.tools, self.steps)
        except ToolArgumentError as exc:
            return self._observe(
                call,
                ToolResult(f"error: {exc}", is_error=True, data={"tool_error": True}),
                stage="rejected",
            )
        except ToolError as exc:
            result = ToolResult(f"error: {exc}", is_error=True, data={"tool_error": True})
        except DeniedAndStop as exc:
            self._observe(
                call, ToolResult(f"denied: {exc.reason}", is_error=True, data={"denied": True})
            )
            raise Denied(f"{call.name} was denied ({exc.reason}) and the run was ended") from exc
        observed = self._observe(call, result)
        if self._ending is not None:
            ending, self._ending = self._ending, None
            raise ending
        return observed

    def _observe(
        self, call: ToolCall, result: ToolResult, stage: str = "result", *, report: bool = True
    ) -> ToolResult:
        """Journal a call's result (and show it, unless ``report`` is off)."""
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
        if report:
            self.report("tool_result", {"call": call, "result": result})
        return result


def over_budget(b: Budgets, steps: int, tokens: int, cost_usd: float) -> str | None:
    """Why the run may not take another step, or None. Pure."""
    if steps >= b.steps:
        return f"the step limit of {b.steps} was reached before the task was done"
    if b.tokens is not None and tokens >= b.tokens:
        return f"the token budget of {b.tokens} was used up before the task was done"
    if b.cost_usd is not None and cost_usd >= b.cost_usd:
        return f"the cost budget of ${b.cost_usd:g} was used up before the task was done"
    return None


def model_call_limit(gate: ApprovalManager, report: Report) -> Callable[[str], None]:
    """The hook that counts one request to the provider of ``spec`` against the
    run's model-call limits; a used-up limit ends the run (``LimitsExceeded``)."""

    def count(spec: str) -> None:
        try:
            gate.spend("models", spec.split("/")[0])
        except QuotaExceeded as exc:
            report("limited", {"message": str(exc)})
            raise LimitsExceeded(str(exc)) from exc

    return count


def executed(result: ToolResult) -> bool:
    """Whether a call was valid and carried out (the win rate counts these)."""
    return not any(result.data.get(k) for k in ("denied", "tool_error", "rate_limited"))


INTERRUPTED = (
    "interrupted: this call was approved and started, but the run stopped before its "
    "result was recorded; it may or may not have taken effect, so check before repeating it"
)


@dataclass
class Replayed:
    """A run's state rebuilt from its journal (``replay``)."""

    messages: list[Message] = field(default_factory=list)
    steps: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    pending: list[ToolCall] = field(default_factory=list)
    """Calls of the last turn still to be carried out."""
    interrupted: list[ToolCall] = field(default_factory=list)
    """Calls approved and started but with no recorded result: never run again."""


def replay(records: list[dict[str, Any]]) -> Replayed:
    """Rebuild a run's conversation and counters from its journal. Pure.

    A call with a recorded result is never repeated. A call that was approved
    but has no result was interrupted while it ran: it is not run again (it may
    have taken effect); the agent is told so instead (``INTERRUPTED``).
    """
    state = Replayed()
    done: set[str] = set()
    approved: set[str] = set()
    last_calls: list[ToolCall] = []
    for rec in records:
        kind, data = rec.get("type"), rec.get("data", {})
        if kind == "user":
            state.messages.append(Message("user", data.get("content")))
        elif kind == "model_turn":
            calls = tuple(
                ToolCall(c["id"], c["name"], c["arguments"]) for c in data.get("tool_calls", [])
            )
            state.messages.append(Message("assistant", data.get("content"), calls))
            state.steps += 1
            usage = data.get("usage", {})
            state.tokens_in += int(usage.get("input_tokens", 0))
            state.tokens_out += int(usage.get("output_tokens", 0))
            state.cost_usd += float(data.get("cost_usd", 0.0))
            last_calls = list(calls)
        elif kind == "tool_result":
            done.add(data["call_id"])
            state.messages.append(
                Message(
                    "tool",
                    data.get("output", ""),
                    tool_call_id=data["call_id"],
                    name=data.get("name"),
                )
            )
        elif kind == "decision" and data.get("approved"):
            approved.add(data.get("call_id", ""))
    for call in last_calls:
        if call.id not in done:
            (state.interrupted if call.id in approved else state.pending).append(call)
    return state
