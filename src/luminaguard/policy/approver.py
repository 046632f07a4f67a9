"""Who decides: the policy first, then a person at a terminal, else nobody.

With no terminal to ask and no policy allowing it, the answer is a denial:
nothing that needs approval ever runs unattended by default.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from luminaguard.messages import ToolCall
from luminaguard.policy.policyfile import Policy
from luminaguard.policy.risk import Assessment, Risk
from luminaguard.protocols import ApprovalRequest, Approver, Decision

ICONS = {Risk.GREEN: "🟢", Risk.YELLOW: "🟡", Risk.ORANGE: "🟠", Risk.RED: "🔴"}


def effective_assessment(policy: Policy, call: ToolCall, assessment: Assessment) -> Assessment:
    """Apply the policy's per-tool override; a RED from the arguments always stays RED."""
    override = policy.risk.get(call.name)
    if override is None or assessment.risk == Risk.RED:
        return assessment
    return Assessment.of(
        override, "policy-override", f"{policy.source} sets {call.name} to {override.label}"
    )


class PolicyApprover:
    """Approves what the policy allows, refuses what it denies, asks ``ask`` for the rest."""

    def __init__(self, policy: Policy, ask: Approver | None) -> None:
        self.policy = policy
        self.ask = ask

    async def decide(self, request: ApprovalRequest) -> Decision:
        level = request.assessment.risk
        by = f"policy ({self.policy.source})"
        if level in self.policy.deny:
            return Decision(
                False, by, f"{level.label} actions are denied by the policy", self._stop
            )
        if level in self.policy.auto_approve:
            return Decision(True, by, f"{level.label} actions run without asking")
        if self.ask is None:
            return Decision(
                False,
                "unattended",
                f"{level.label} actions need approval and there is no one to ask "
                "(no terminal, and the policy does not allow them)",
                self._stop,
            )
        decision = await self.ask.decide(request)
        if not decision.approved and self._stop:
            return Decision(False, decision.by, decision.reason, True)
        return decision

    @property
    def _stop(self) -> bool:
        return self.policy.on_denial == "stop"


class TerminalApprover:
    """A plain y/n/q prompt. 'q' denies and ends the run."""

    def __init__(self, stdin: TextIO | None = None, stdout: TextIO | None = None) -> None:
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout

    async def decide(self, request: ApprovalRequest) -> Decision:
        return await asyncio.to_thread(self._ask, request)

    def _ask(self, request: ApprovalRequest) -> Decision:
        out = self.stdout
        out.write(render_request(request))
        while True:
            out.write("Approve? [y]es / [n]o / [q]uit the run: ")
            out.flush()
            line = self.stdin.readline()
            if not line:  # end of input: nobody is there any more
                return Decision(False, "user", "no answer (end of input)", stop=True)
            answer = line.strip().lower()
            if answer in ("y", "yes"):
                return Decision(True, "user")
            if answer in ("n", "no"):
                out.write("Reason (optional): ")
                out.flush()
                reason = self.stdin.readline().strip()
                return Decision(False, "user", reason or "denied by the user")
            if answer in ("q", "quit"):
                return Decision(False, "user", "denied by the user, who ended the run", stop=True)


def render_request(request: ApprovalRequest) -> str:
    a = request.assessment
    lines = [
        "",
        f"{ICONS[a.risk]} {a.risk.name}  {request.call.name}",
        *(f"   · {r}" for r in a.reasons),
    ]
    if request.preview:
        lines += ["", *("   " + line for line in request.preview.rstrip("\n").splitlines())]
    return "\n".join(lines) + "\n"


def default_approver(policy: Policy, interactive: bool | None = None) -> PolicyApprover:
    """The policy in front of a terminal prompt when stdin is a terminal, else in front of nobody."""
    if interactive is None:
        interactive = sys.stdin.isatty()
    return PolicyApprover(policy, TerminalApprover() if interactive else None)
