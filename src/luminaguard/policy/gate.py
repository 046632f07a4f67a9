"""The ApprovalManager: the final gate in front of every tool call.

GREEN actions the policy lets through run at once. Everything else is
prepared first (previewed in a throw-away layer, or described as the exact
request), classified again on what it would do, and put on a Diff Card; then
the policy's levels, a matching grant, or a person decides, within their
permissions. Approved previews are committed, not re-run. Every step is
recorded: the card and its hash, who decided, the grant used or made.

The decisions are pure functions of data (``runs_unasked``, ``make_card``,
``by_policy``, ``settle``), apart from the I/O that ``ApprovalManager`` does
around them (prepare, ask, apply, record), so that another runner (a Temporal
workflow) can make the same decisions deterministically and do the I/O as
activities.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from luminaguard.core.card import DiffCard
from luminaguard.core.grant import Grant
from luminaguard.core.risk import Assessment, Risk, strictest
from luminaguard.core.text import bounded
from luminaguard.errors import DeniedAndStop, QuotaExceeded, ToolError
from luminaguard.messages import ToolCall, ToolResult
from luminaguard.policy.grants import GrantStore
from luminaguard.policy.permissions import may_approve
from luminaguard.policy.policyfile import Policy, effective_assessment
from luminaguard.policy.ratelimit import Limiter, Subject
from luminaguard.protocols import ApprovalRequest, Approver, Decision, Prepared, ToolSource

Record = Callable[[str, dict[str, Any]], object]
Report = Callable[[str, dict[str, Any]], None]


@dataclass
class GateContext:
    run_id: str
    workspace: str
    agent: str = "agent"
    task: str = ""


def runs_unasked(policy: Policy, static: Assessment) -> bool:
    """Whether a call runs at once, without a preview: GREEN, and the policy lets GREEN run."""
    return static.risk == Risk.GREEN and Risk.GREEN in policy.auto_approve


ARGUMENT_LIMIT = 16 * 1024
"""A card (and the journal's record of a call) shows at most this much of one
argument; the rest is counted and hashed. The model's own turn keeps it whole."""


def make_card(
    call: ToolCall, static: Assessment, prepared: Prepared, context: dict[str, Any]
) -> DiffCard:
    """The Diff Card of a prepared call: at the stricter of its static level
    and the level of what its preview observed."""
    parts = [static] + ([prepared.effect_assessment] if prepared.effect_assessment else [])
    command = call.arguments.get("command") if prepared.kind == "command" else None
    if isinstance(command, str) and len(command) > ARGUMENT_LIMIT:
        parts.append(
            Assessment.of(
                Risk.RED,
                "too-long",
                f"the command is {len(command):,} characters long: the card shows only "
                f"the first {ARGUMENT_LIMIT:,}",
            )
        )
    return DiffCard(
        tool=call.name,
        arguments=bounded(call.arguments, ARGUMENT_LIMIT),
        assessment=strictest(parts),
        kind=prepared.kind,
        effects=prepared.effects,
        request=prepared.request,
        context=context,
    )


def by_policy(
    policy: Policy, level: Risk, grant: Grant | None, *, rerun: bool = False
) -> Decision | None:
    """The decision the policy's levels or a matching grant make; None: ask.
    An action that will run again for real (``rerun``: its preview could not do
    its work) is never approved without asking."""
    who = f"policy ({policy.source})"
    if level in policy.deny:
        stop = policy.on_denial == "stop"
        return Decision(False, who, f"{level.label} actions are denied by the policy", stop)
    if rerun:
        return None
    if level in policy.auto_approve:
        return Decision(True, who, f"{level.label} actions run without asking")
    if grant is not None:
        return Decision(
            True, f"grant {grant.id}", grant.reason or f"covered by grant {grant.id}", grant=grant
        )
    return None


@dataclass(frozen=True)
class Settled:
    """An approver's answer checked against the policy."""

    decision: Decision
    refused: str | None = None
    """Why the principal may not decide this (the answer then counts as a denial if it approved)."""
    new_grant: Grant | None = None
    """The grant to store (scoped by the policy)."""


def settle(
    policy: Policy, call: ToolCall, level: Risk, decision: Decision, *, workspace: str, run_id: str
) -> Settled:
    """Check an approver's ``decision`` on a call at ``level``: the principal's
    permission, the scope of a grant it made, a stop after a denial."""
    stop = policy.on_denial == "stop"
    refused = None
    if decision.principal is not None:
        allowed, why = may_approve(
            decision.principal, call.name, level, policy.principals, policy.roles
        )
        if not allowed:
            refused = why
            if decision.approved:
                return Settled(Decision(False, decision.by, f"approval refused: {why}", stop), why)
    grant = None
    if decision.approved and decision.grant is not None:
        grant = decision.grant
        outlives = {
            Risk.ORANGE: policy.orange_grants_outlive_run,
            Risk.RED: policy.red_grants_outlive_run,
        }
        if not outlives.get(level, True):
            grant = replace(grant, run_id=run_id)
        grant = replace(grant, created_by=decision.by, workspace=grant.workspace or workspace)
        decision = replace(decision, grant=grant)
    if not decision.approved and stop:
        decision = replace(decision, stop=True)
    return Settled(decision, refused, grant)


class ApprovalManager:
    def __init__(
        self,
        policy: Policy,
        approver: Approver,
        *,
        grants: GrantStore,
        context: GateContext,
        record: Record,
        report: Report,
        limiter: Limiter | None = None,
    ) -> None:
        self.policy = policy
        self.approver = approver
        self.grants = grants
        self.ctx = context
        self.record = record
        self.report = report
        self.limiter = limiter

    async def run(self, call: ToolCall, tools: ToolSource, step: int = 0) -> ToolResult:
        """Gate and carry out one call; failures the model can act on come back as results."""
        try:
            self.spend("tools", call.name)
        except QuotaExceeded as exc:
            self.report("limited", {"call": call, "message": str(exc)})
            return ToolResult(f"error: {exc}", is_error=True, data={"rate_limited": True})
        static = effective_assessment(self.policy, call, tools.assess(call))
        if runs_unasked(self.policy, static):
            self.report("tool_call", {"call": call, "assessment": static, "card": None})
            self.record(
                "tool_call", {"call": bounded(call.to_dict(), ARGUMENT_LIMIT), **static.to_dict()}
            )
            self.record(
                "decision",
                {
                    "call_id": call.id,
                    "approved": True,
                    "by": f"policy ({self.policy.source})",
                    "reason": "green actions run without asking",
                },
            )
            return await tools.call(call)
        prepared = await tools.prepare(call)
        refused, first = await self._ask(call, tools, prepared, static, step)
        if refused is not None:
            return refused
        if (prepared.effects or {}).get("rerun"):
            # Approved to run again for real: now with the network, in a fresh
            # layer, and what it really changed is a second card of its own.
            # Its requests have been made; its file changes are committed only
            # if that card is approved too.
            tools.discard(prepared)
            prepared = await tools.prepare(call, live=True)
            refused, _ = await self._ask(call, tools, prepared, static, step, rerun_of=first)
            if refused is not None:
                return refused
        try:
            return await tools.apply(prepared)
        except ToolError:
            tools.discard(prepared)
            raise

    async def _ask(
        self,
        call: ToolCall,
        tools: ToolSource,
        prepared: Prepared,
        static: Assessment,
        step: int,
        rerun_of: str | None = None,
    ) -> tuple[ToolResult | None, str]:
        """Show the card of ``prepared`` and get a decision: the refusal (as a
        result for the model) or None when approved, and the card's hash."""
        card = make_card(
            call,
            static,
            prepared,
            {
                "run_id": self.ctx.run_id,
                "agent": self.ctx.agent,
                "task": self.ctx.task,
                "step": step,
                "call_id": call.id,
            },
        )
        self.report("tool_call", {"call": call, "assessment": card.assessment, "card": card})
        self.record(
            "tool_call",
            {
                # The card's arguments are bounded already: cut (and hashed) once.
                "call": {**call.to_dict(), "arguments": card.arguments},
                **card.assessment.to_dict(),
                "card": card.to_dict(),
                "card_hash": card.hash,
                **({"rerun_of": rerun_of} if rerun_of else {}),
            },
        )
        try:
            decision = await self.decide(call, card)
        except BaseException:
            tools.discard(prepared)
            raise
        self.record(
            "decision",
            {
                "call_id": call.id,
                "approved": decision.approved,
                "by": decision.by,
                "reason": decision.reason,
                "card_hash": card.hash,
                "grant": decision.grant.id if decision.grant else None,
            },
        )
        self.report(
            "decision",
            {"call": call, "decision": decision, "assessment": card.assessment, "card": card},
        )
        if decision.approved:
            return None, card.hash
        tools.discard(prepared)
        if decision.stop:
            raise DeniedAndStop(decision.reason)
        return (
            ToolResult(
                f"denied: {decision.reason}",
                is_error=True,
                data={"denied": True, "card_hash": card.hash},
            ),
            card.hash,
        )

    def spend(self, on: str, name: str, spent: dict[str, float] | None = None) -> None:
        """Count a call ``on`` tools or models against the rate limits (before it
        is made), or charge its tokens and cost (``spent``, after). Raises
        ``QuotaExceeded``."""
        if self.limiter is None:
            return
        subject = Subject(self.ctx.run_id, self.ctx.agent)
        if spent is None:
            self.limiter.take(subject, on, name)
        else:
            self.limiter.charge(subject, on, name, spent)

    async def decide(self, call: ToolCall, card: DiffCard) -> Decision:
        level = card.risk
        grant = None
        if level not in self.policy.deny and level not in self.policy.auto_approve:
            grant = self.grants.match(card, workspace=self.ctx.workspace, run_id=self.ctx.run_id)
        rerun = bool((card.effects or {}).get("rerun"))
        decided = by_policy(self.policy, level, grant, rerun=rerun)
        if decided is not None:
            return decided
        answer = await self.approver.decide(ApprovalRequest(call, card, notify=self.report))
        settled = settle(
            self.policy,
            call,
            level,
            answer,
            workspace=self.ctx.workspace,
            run_id=self.ctx.run_id,
        )
        if settled.refused is not None:
            self.record(
                "approval_refused",
                {
                    "call_id": call.id,
                    "principal": answer.principal,
                    "reason": settled.refused,
                    "card_hash": card.hash,
                    "approved": answer.approved,
                },
            )
        if settled.new_grant is not None:
            self.grants.add(settled.new_grant)
            self.record("grant", settled.new_grant.to_dict())
        return settled.decision
