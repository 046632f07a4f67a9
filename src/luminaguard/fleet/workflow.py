"""`AgentRun`: one agent run as a Temporal workflow.

Deterministic and small: it runs the run a step at a time (the ``step``
activity: pending calls, one model turn, its calls, on whichever worker takes
it), and when a call's card needs a person it waits for a decision, which
comes as the ``decide`` Workflow Update. Every decision the policy can make
is made in the activity, by the same gate a local run uses; the workflow only
holds what a person said until the step that needs it. Status is a query.

Code changes that would alter the commands of a running workflow go behind
``workflow.patched`` (a replay test over a recorded history guards this).
"""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

from luminaguard.fleet.data import Answer, RunInput, StepInput, StepOutput, Waiting, status_of

HEARTBEAT_TIMEOUT = timedelta(seconds=2)
"""A worker that stops beating for this long (killed, stuck) loses the step to another."""
STEP_TIMEOUT = timedelta(hours=1)
STEP_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=20,
    # A mistake in what was submitted (a bad policy, workspace or model) does
    # not go away by trying again.
    non_retryable_error_types=["UserError"],
)


@workflow.defn(name="AgentRun")
class AgentRun:
    def __init__(self) -> None:
        self.state = "running"
        self.steps = 0
        self.waiting: Waiting | None = None
        self.answers: dict[str, Answer] = {}
        """By ``Waiting.key``."""
        self.outcome = ""
        self.message = ""
        self.worker = ""
        self.policy_toml = ""

    @workflow.run
    async def run(self, run: RunInput) -> dict[str, Any]:
        self.policy_toml = run.policy_toml
        while True:
            out = await workflow.execute_activity(
                "step",
                StepInput(run, list(self.answers.values())),
                result_type=StepOutput,
                start_to_close_timeout=STEP_TIMEOUT,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=STEP_RETRY,
            )
            self.steps, self.worker = out.steps, out.worker
            if out.status == "ended":
                self.state, self.outcome, self.message = (
                    status_of(out.outcome),
                    out.outcome,
                    out.message,
                )
                self.waiting = None
                return self.status()
            if out.status == "waiting" and out.waiting is not None:
                self.waiting, self.state = out.waiting, "waiting"
                await workflow.wait_condition(self._answered)
                self.waiting, self.state = None, "running"
                continue
            # Every answer given so far is in the journal now.
            self.answers = {}
            if workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(run)

    def _answered(self) -> bool:
        """Whether the waiting card has its answer."""
        return self.waiting is not None and self.waiting.key in self.answers

    @workflow.update
    async def decide(self, answer: Answer) -> str:
        """A person's decision on the waiting call; the card hash it applies to."""
        assert self.waiting is not None
        w = self.waiting
        self.answers[w.key] = replace(answer, card_hash=w.card_hash, change_hash=w.change_hash)
        return w.card_hash

    @decide.validator
    def check(self, answer: Answer) -> None:
        """Refuse a decision on a call that does not wait, on a card that is no
        longer the one waiting, a second one, or from a principal the policy
        does not let approve this call."""
        waiting = self.waiting
        if waiting is None or answer.call_id != waiting.call_id:
            now = f"call {waiting.call_id} waits" if waiting else "no call waits for a decision"
            raise ValueError(
                f"call {answer.call_id} does not wait for a decision in this run ({now})"
            )
        if answer.card_hash and answer.card_hash != waiting.card_hash:
            raise ValueError(
                f"the card of call {answer.call_id} changed (it is {waiting.card_hash[:12]} now): "
                "read it again before deciding"
            )
        if answer.grant_hours and (not answer.approved or answer.grant_hours < 0):
            raise ValueError("a grant goes with an approval, for a positive number of hours")
        given = self.answers.get(waiting.key)
        if given is not None:
            raise ValueError(f"call {answer.call_id} was decided already (by {given.by})")
        if (
            answer.approved
            and waiting.allowed is not None
            and answer.principal not in waiting.allowed
        ):
            who = ", ".join(waiting.allowed) or "nobody"
            raise ValueError(
                f"{answer.principal} may not approve {waiting.tool} at {waiting.risk} "
                f"(the policy lets {who})"
            )

    @workflow.query
    def status(self) -> dict[str, Any]:
        return {
            "id": workflow.info().workflow_id,
            "status": self.state,
            "steps": self.steps,
            "outcome": self.outcome,
            "message": self.message,
            "worker": self.worker,
            "waiting": asdict(self.waiting) if self.waiting else None,
        }

    @workflow.query
    def policy(self) -> str:
        """The run's policy text (who may decide as whom)."""
        return self.policy_toml
