"""The Diff Card: everything a person sees before deciding on one action.

It holds the tool and its arguments, the level with its reasons, and either
the observed effects of a preview (created, modified with diffs, deleted,
network attempts, exit code and an output excerpt) or, for an action that
cannot be previewed, the exact request. Its hash covers exactly that content,
so the journal can prove which card a decision was made on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from luminaguard.core.risk import Assessment, Risk

EXCERPT = 2000
PRINTED = ("stdout", "stderr")
"""A preview's output: shown on the card, not part of what it would change."""


def _digest(content: dict[str, Any]) -> str:
    canonical = json.dumps(
        content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class DiffCard:
    tool: str
    arguments: Any
    assessment: Assessment
    kind: str
    """`command` (a previewed shell command), `create`, `edit`, `delete`, or `request`."""
    effects: dict[str, Any] | None = None
    request: dict[str, Any] | None = None
    context: dict[str, Any] = field(default_factory=dict)
    """Who asked and where (agent, task, run id, step): shown, not hashed."""

    @property
    def risk(self) -> Risk:
        return self.assessment.risk

    def content(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "arguments": self.arguments,
            "risk": self.risk.label,
            "reasons": [str(r) for r in self.assessment.reasons],
            "kind": self.kind,
            "effects": self.effects,
            "request": self.request,
        }

    @property
    def hash(self) -> str:
        return _digest(self.content())

    @property
    def change_hash(self) -> str:
        """The hash of what the action would change: the card's content without
        what the command printed. A decision made on one preview holds for
        another preview of the same call with the same changes, level and
        reasons (a fleet run previews again on the worker that carries it
        out, and a test run's timing line differs each time)."""
        content = self.content()
        if content["effects"]:
            content["effects"] = {k: v for k, v in content["effects"].items() if k not in PRINTED}
        return _digest(content)

    def to_dict(self) -> dict[str, Any]:
        return {**self.content(), "hash": self.hash, "context": self.context}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DiffCard:
        return cls(
            tool=data["tool"],
            arguments=data.get("arguments"),
            assessment=Assessment.from_dict(data),
            kind=data.get("kind", "request"),
            effects=data.get("effects"),
            request=data.get("request"),
            context=data.get("context", {}),
        )


def effects_excerpt(preview: dict[str, Any]) -> dict[str, Any]:
    """A preview's JSON with its output cut to an excerpt, for the card."""
    out = dict(preview)
    for name in ("stdout", "stderr"):
        text = str(out.get(name, ""))
        if len(text) > EXCERPT:
            out[name] = text[:EXCERPT] + f"\n[... {len(text) - EXCERPT} more characters]"
    out.pop("risk", None)
    out.pop("reasons", None)
    return out
