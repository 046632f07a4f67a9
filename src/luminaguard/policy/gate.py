"""The ApprovalManager: the final gate in front of every tool call.

GREEN actions the policy lets through run at once. Everything else is
prepared first (previewed in a throw-away layer, or described as the exact
request), classified again on what it would do, and put on a Diff Card; then
the policy's levels, a matching grant, or a person decides, within their
permissions. Approved previews are committed, not re-run. Every step is
recorded: the card and its hash, who decided, the grant used or made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from luminaguard.errors import ToolError
from luminaguard.messages import ToolCall, ToolResult
from luminaguard.policy.card import DiffCard
from luminaguard.policy.grants import GrantStore
from luminaguard.policy.permissions import may_approve
from luminaguard.policy.policyfile import Policy, effective_assessment
from luminaguard.policy.ratelimit import Limiter, RateLimited, Subject
from luminaguard.policy.risk import Risk, strictest
from luminaguard.protocols import ApprovalRequest, Approver, Decision, ToolSource

Record = Callable[[str, dict[str, Any]], object]
Report = Callable[[str, dict[str, Any]], None]


class DeniedAndStop(Exception):
    """A denial after which the run must end (policy `on_denial = "stop"`, or the person said so)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class GateContext:
    run_id: str
    workspace: str
    agent: str = "agent"
    task: str = ""


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
        except RateLimited as exc:
            self.report("limited", {"call": call, "message": str(exc)})
            return ToolResult(f"error: {exc}", is_error=True, data={"rate_limited": True})
        static = effective_assessment(self.policy, call, tools.assess(call))
        if static.risk == Risk.GREEN and Risk.GREEN in self.policy.auto_approve:
            self.report("tool_call", {"call": call, "assessment": static, "card": None})
            self.record("tool_call", {"call": call.to_dict(), **static.to_dict()})
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
        parts = [static] + ([prepared.effect_assessment] if prepared.effect_assessment else [])
        card = DiffCard(
            tool=call.name,
            arguments=call.arguments,
            assessment=strictest(parts),
            kind=prepared.kind,
            effects=prepared.effects,
            request=prepared.request,
            context={
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
                "call": call.to_dict(),
                **card.assessment.to_dict(),
                "card": card.to_dict(),
                "card_hash": card.hash,
            },
        )
        decision = await self.decide(call, card)
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
        if not decision.approved:
            prepared.discard()
            if decision.stop:
                raise DeniedAndStop(decision.reason)
            return ToolResult(
                f"denied: {decision.reason}",
                is_error=True,
                data={"denied": True, "card_hash": card.hash},
            )
        try:
            return await prepared.apply()
        except ToolError:
            prepared.discard()
            raise

    def spend(self, on: str, name: str, spent: dict[str, float] | None = None) -> None:
        """Count a call ``on`` tools or models against the rate limits (before it
        is made), or charge its tokens and cost (``spent``, after). Raises
        ``RateLimited``."""
        if self.limiter is None:
            return
        subject = Subject(self.ctx.run_id, self.ctx.agent)
        if spent is None:
            self.limiter.take(subject, on, name)
        else:
            self.limiter.charge(subject, on, name, spent)

    async def decide(self, call: ToolCall, card: DiffCard) -> Decision:
        level = card.risk
        by_policy = f"policy ({self.policy.source})"
        stop = self.policy.on_denial == "stop"
        if level in self.policy.deny:
            return Decision(
                False, by_policy, f"{level.label} actions are denied by the policy", stop
            )
        if level in self.policy.auto_approve:
            return Decision(True, by_policy, f"{level.label} actions run without asking")
        grant = self.grants.match(card, workspace=self.ctx.workspace, run_id=self.ctx.run_id)
        if grant is not None:
            return Decision(
                True,
                f"grant {grant.id}",
                grant.reason or f"covered by grant {grant.id}",
                grant=grant,
            )
        decision = await self.approver.decide(ApprovalRequest(call, card))
        if decision.principal is not None:
            allowed, why = may_approve(
                decision.principal, call.name, level, self.policy.principals, self.policy.roles
            )
            if not allowed:
                self.record(
                    "approval_refused",
                    {
                        "call_id": call.id,
                        "principal": decision.principal,
                        "reason": why,
                        "card_hash": card.hash,
                        "approved": decision.approved,
                    },
                )
                if decision.approved:
                    return Decision(False, decision.by, f"approval refused: {why}", stop)
        if decision.approved and decision.grant is not None:
            grant = decision.grant
            if level == Risk.RED and not self.policy.red_grants_outlive_run:
                grant = replace(grant, run_id=self.ctx.run_id)
            grant = replace(
                grant, created_by=decision.by, workspace=grant.workspace or self.ctx.workspace
            )
            self.grants.add(grant)
            self.record("grant", grant.to_dict())
            decision = replace(decision, grant=grant)
        if not decision.approved and stop:
            decision = replace(decision, stop=True)
        return decision
