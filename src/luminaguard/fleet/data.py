"""What a fleet run's workflow and activities pass each other: plain data,
small by design. A run's conversation, cards and tool output stay in its
journal (the activities read and write it); the workflow carries ids,
counters, the card waiting for a person (bounded), and the answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STATUSES = ("running", "waiting", "finished", "failed", "denied")


@dataclass
class RunInput:
    run_id: str
    task: str
    workspace: str
    spec: str
    """PROVIDER/MODEL, or scripted/PLAYBOOK."""
    policy_toml: str = ""
    """The policy's text (every worker decides by the same one); empty: the built-in default."""
    policy_source: str = ""
    max_steps: int = 0
    """0: the workspace's settings."""


@dataclass
class Answer:
    """A person's decision on a waiting call, as the Update carries it."""

    call_id: str
    approved: bool
    by: str
    reason: str = ""
    principal: str | None = None
    card_hash: str = ""
    """The card decided on; empty: the one waiting (the workflow fills it in)."""
    change_hash: str = ""
    """What that card would change (``DiffCard.change_hash``; the workflow fills it in):
    the answer holds for a new preview with the same changes."""
    grant_hours: float = 0.0
    """With an approval: also grant calls like it for this many hours
    (``new_grant``; stored by the worker that carries the call out)."""


@dataclass
class Waiting:
    """A call whose card waits for a person."""

    call_id: str
    tool: str
    risk: str
    card_hash: str
    change_hash: str
    summary: str
    allowed: list[str] | None = None
    """The principals who may approve it; None: anyone who may decide at all."""
    card: dict[str, Any] | None = None
    """The whole card (``DiffCard.to_dict``) for the approval inbox
    (``fleet.bridge``); None when it is over ``CARD_LIMIT``."""

    @property
    def key(self) -> str:
        """What an answer to it is held under: a call can have two cards (a
        preview, then its live rerun), and an answer holds for the same changes."""
        return f"{self.call_id}/{self.change_hash}"


@dataclass
class StepInput:
    run: RunInput
    answers: list[Answer] = field(default_factory=list)


@dataclass
class StepOutput:
    status: str
    """`continue`, `waiting` or `ended`."""
    steps: int = 0
    outcome: str = ""
    message: str = ""
    waiting: Waiting | None = None
    worker: str = ""


def status_of(outcome: str) -> str:
    """A run's status in `fleet status` for how it ended."""
    return outcome if outcome in STATUSES else "failed"
