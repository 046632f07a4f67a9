"""The fleet's one activity, ``step``: a run's next step on this worker.

The run's journal is its state: each step reopens it (``Session(resume=…)``),
rebuilds the conversation from it, carries out the calls still pending and
one model turn with its calls, and lets go of it. So any worker can take any
step, and a step retried after its worker died starts from what was
journaled, never from a guess:

- a call with a recorded result is never repeated;
- a call approved and started but with no result (its worker died while it
  ran) is not run again: the model is told it was interrupted (``replay``);
- a card waiting for a person is previewed again by the next step, and a
  person's answer applies only to a preview with the same changes as the
  card they decided on (``DiffCard.change_hash``); a changed card is asked
  again.

The run's lock keeps two workers from stepping the same run at once (one
whose heartbeat lapsed but which still runs holds it: the retry waits).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from luminaguard.core.card import DiffCard
from luminaguard.core.decision import ApprovalRequest, Decision
from luminaguard.core.grant import new_grant
from luminaguard.errors import AwaitingDecision, RunBusy, UserError
from luminaguard.fleet.data import Answer, StepInput, StepOutput, Waiting
from luminaguard.policy.approver import Unattended
from luminaguard.policy.policyfile import Policy

BEAT_S = 0.5
CARD_TEXT_LIMIT = 8 * 1024
"""The card text a waiting step carries (the whole card is in the journal)."""
CARD_LIMIT = 256 * 1024
"""The largest card a waiting step carries whole, for the inbox (history
payloads are refused over 2 MiB)."""


class FleetApprover(Unattended):
    """Answers a card with the person's decision the workflow holds for it (on
    the same card hash), or ends the step to ask for one. A server's question
    has no one to ask in a fleet step: declined (``Unattended``)."""

    def __init__(self, answers: list[Answer]) -> None:
        self.answers = {(a.call_id, a.change_hash): a for a in answers}

    async def decide(self, request: ApprovalRequest) -> Decision:
        card = request.card
        answer = self.answers.get((request.call.id, card.change_hash))
        if answer is None:
            raise AwaitingDecision(request.call, card)
        reason = answer.reason
        if answer.card_hash != card.hash:
            reason += f" (decided on card {answer.card_hash[:12]}, with the same changes)"
        grant = (
            new_grant(card, answer.grant_hours) if answer.approved and answer.grant_hours else None
        )
        return Decision(answer.approved, answer.by, reason, grant=grant, principal=answer.principal)


def allowed_principals(policy: Policy, tool: str, card: DiffCard) -> list[str] | None:
    """Who may approve ``tool`` at the card's level (None: the policy names no principals)."""
    from luminaguard.policy.permissions import may_approve

    if not policy.principals:
        return None
    return [
        name
        for name in policy.principals
        if may_approve(name, tool, card.risk, policy.principals, policy.roles)[0]
    ]


class Steps:
    """The activities of one worker: its sandbox backend, its name."""

    def __init__(self, backend: str | None = None, name: str | None = None) -> None:
        self.backend = backend
        self.name = name or f"{socket.gethostname()}/{os.getpid()}"

    @activity.defn(name="step")
    async def step(self, inp: StepInput) -> StepOutput:
        """One step, worked in a thread (its own event loop) while this loop beats."""
        work = asyncio.ensure_future(asyncio.to_thread(lambda: asyncio.run(self._step(inp))))
        while not work.done():
            activity.heartbeat()
            await asyncio.wait({work}, timeout=BEAT_S)
        try:
            return work.result()
        except RunBusy:
            raise  # retried: the worker holding the run lets go of it, or dies
        except UserError as exc:
            raise ApplicationError(str(exc), type="UserError", non_retryable=True) from exc

    async def _step(self, inp: StepInput) -> StepOutput:
        from luminaguard.agent.session import Session, SessionOptions
        from luminaguard.audit.index import RunIndex
        from luminaguard.config import load_settings
        from luminaguard.policy.policyfile import load_policy, parse_policy
        from luminaguard.ui.cards import render_card_text

        run = inp.run
        workspace = Path(run.workspace)
        settings = load_settings(workspace)
        index = RunIndex(settings.data_dir / "index.db")
        row = index.get(run.run_id)
        index.close()
        if row is not None and row["outcome"] is not None:
            # A retry of the step that ended the run: it ended.
            return StepOutput("ended", outcome=str(row["outcome"]), worker=self.name)
        policy = (
            parse_policy(run.policy_toml, run.policy_source or "the run's policy")
            if run.policy_toml
            else load_policy(None)
        )
        approver = FleetApprover(inp.answers)
        backend = self.backend or settings.sandbox.backend
        options = SessionOptions(
            workspace=workspace,
            spec=run.spec,
            policy=policy,
            backend=backend,
            max_steps=run.max_steps or settings.agent.max_steps,
            approver=approver,
            report=lambda event, data: None,
            agent_name=f"fleet worker {self.name}",
            details={
                "fleet": True,
                "policy": run.policy_source or None,
                "sandbox": backend,
                "max_steps": run.max_steps or settings.agent.max_steps,
            },
        )
        if row is None:
            session = Session(settings, options, task=run.task, run_id=run.run_id)
        else:
            session = Session(settings, options, resume=run.run_id)
        try:
            result = await session.advance()
        except AwaitingDecision as waits:
            card = waits.card
            return StepOutput(
                "waiting",
                steps=session.agent.steps,
                worker=self.name,
                waiting=Waiting(
                    call_id=waits.call.id,
                    tool=waits.call.name,
                    risk=card.risk.label,
                    card_hash=card.hash,
                    change_hash=card.change_hash,
                    summary=render_card_text(card)[:CARD_TEXT_LIMIT],
                    allowed=allowed_principals(policy, waits.call.name, card),
                    card=_bounded(card),
                ),
            )
        finally:
            session.close()
        if result is None:
            return StepOutput("continue", steps=session.agent.steps, worker=self.name)
        return StepOutput(
            "ended",
            steps=result.steps,
            outcome=result.outcome,
            message=result.message,
            worker=self.name,
        )


def _bounded(card: DiffCard) -> dict[str, Any] | None:
    whole = card.to_dict()
    return whole if len(json.dumps(whole, default=str)) <= CARD_LIMIT else None
