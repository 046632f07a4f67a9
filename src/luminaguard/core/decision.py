"""A question to an approver and its answer, as data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from luminaguard.core.card import DiffCard
from luminaguard.core.grant import Grant
from luminaguard.core.risk import Assessment
from luminaguard.messages import ToolCall


@dataclass(frozen=True)
class ApprovalRequest:
    """Everything a person (or a policy) needs to decide on one tool call."""

    call: ToolCall
    card: DiffCard
    notify: Callable[[str, dict[str, Any]], None] | None = field(default=None, compare=False)
    """Told while the approver waits somewhere the run's output does not show
    (``approval_waiting``: the inbox), so the person knows where to look."""

    @property
    def assessment(self) -> Assessment:
        return self.card.assessment


@dataclass(frozen=True)
class Decision:
    """An approver's answer. ``stop`` ends the run after a denial; ``grant``
    answers this and future matching actions in advance."""

    approved: bool
    by: str
    reason: str = ""
    stop: bool = False
    grant: Grant | None = None
    principal: str | None = None
    """The person who decided, for the permission check (None: a policy or grant)."""
