"""A grant: a scoped, expiring permission that answers an approval in advance.

A grant names a tool (or `*`), optionally a pattern the command or path must
match, the highest level it covers, the workspace, the network hosts it
allows, and when it expires. Pure data; the store is ``policy/grants.py``.
"""

from __future__ import annotations

import fnmatch
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from luminaguard.core.card import DiffCard
from luminaguard.core.risk import Risk


@dataclass(frozen=True)
class Grant:
    tool: str
    max_risk: Risk
    until: float
    """Expiry, seconds since the epoch."""
    pattern: str | None = None
    """fnmatch pattern on the command (shell) or path (file tools)."""
    workspace: str | None = None
    hosts: tuple[str, ...] = ()
    """Network hosts the granted action may reach (none when empty)."""
    run_id: str | None = None
    """Set: the grant is valid in this run only."""
    created_by: str = ""
    reason: str = ""
    id: str = field(default_factory=lambda: "g-" + secrets.token_hex(4))

    def subject(self, card: DiffCard) -> str:
        args = card.arguments if isinstance(card.arguments, dict) else {}
        return str(args.get("command") or args.get("path") or "")

    def covers(
        self, card: DiffCard, *, workspace: str, run_id: str, now: float | None = None
    ) -> bool:
        now = time.time() if now is None else now
        if now >= self.until:
            return False
        if self.run_id is not None and self.run_id != run_id:
            return False
        if self.tool != "*" and self.tool != card.tool:
            return False
        if card.risk > self.max_risk:
            return False
        if self.workspace is not None and self.workspace != workspace:
            return False
        if self.pattern is not None and not fnmatch.fnmatchcase(self.subject(card), self.pattern):
            return False
        network = (card.effects or {}).get("network") or []
        hosts = {str(a.get("host")) for a in network if a.get("host")}
        if any(a.get("suspected") for a in network):
            return False
        return hosts <= set(self.hosts)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["max_risk"] = self.max_risk.label
        d["hosts"] = list(self.hosts)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Grant:
        return cls(
            **{**d, "max_risk": Risk.parse(d["max_risk"]), "hosts": tuple(d.get("hosts", ()))}
        )


def new_grant(
    card: DiffCard, hours: float, pattern: str | None = None, now: float | None = None
) -> Grant:
    """A grant covering actions like ``card`` (same tool, pattern, level and hosts) for ``hours``."""
    now = time.time() if now is None else now
    network = (card.effects or {}).get("network") or []
    return Grant(
        tool=card.tool,
        max_risk=card.risk,
        until=now + hours * 3600,
        pattern=pattern,
        hosts=tuple(sorted({str(a["host"]) for a in network if a.get("host")})),
        reason=f"granted for {hours:g} h",
    )
