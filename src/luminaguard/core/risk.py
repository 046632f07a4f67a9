"""Risk levels and assessments: ordered values combined by taking the strictest.

A decision is pure data: a level and the reasons for it (a rule id and a
one-line justification each). Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from luminaguard.errors import ConfigError


class Risk(IntEnum):
    """How far an action reaches. The order is the point: max() is 'strictest'."""

    GREEN = 0
    """No side effects: reads, listings, searches."""
    YELLOW = 1
    """Only new files inside the workspace."""
    ORANGE = 2
    """Changes or deletes existing workspace state."""
    RED = 3
    """Leaves the workspace, cannot be undone, or cannot be classified."""

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Risk:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            known = ", ".join(r.label for r in cls)
            raise ConfigError(f"unknown risk level {text!r}; known levels: {known}") from None


ICONS = {Risk.GREEN: "🟢", Risk.YELLOW: "🟡", Risk.ORANGE: "🟠", Risk.RED: "🔴"}


@dataclass(frozen=True)
class Reason:
    """Why a rule put an action at a level."""

    rule: str
    text: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.text}"


@dataclass(frozen=True)
class Assessment:
    """A level with the reasons that led to it."""

    risk: Risk
    reasons: tuple[Reason, ...]

    @classmethod
    def of(cls, risk: Risk, rule: str, text: str) -> Assessment:
        return cls(risk, (Reason(rule, text),))

    def to_dict(self) -> dict[str, object]:
        return {"risk": self.risk.label, "reasons": [str(r) for r in self.reasons]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Assessment:
        reasons = []
        for text in d.get("reasons", []):
            rule, _, why = str(text).partition(": ")
            reasons.append(Reason(rule, why))
        return cls(Risk.parse(str(d["risk"])), tuple(reasons))


def strictest(assessments: Iterable[Assessment]) -> Assessment:
    """The highest level among ``assessments``, with the reasons that reach it
    (each once, in order). The one place "strictest wins" is written.

    An empty input cannot be classified, so it is RED, never GREEN.
    """
    items = list(assessments)
    if not items:
        return Assessment.of(Risk.RED, "unclassified", "nothing could be classified")
    top = max(a.risk for a in items)
    reasons = tuple(dict.fromkeys(r for a in items if a.risk == top for r in a.reasons))
    return Assessment(top, reasons)
