"""Grants: scoped, expiring permissions that answer an approval in advance.

A grant names a tool (or `*`), optionally a pattern the command or path must
match, the highest level it covers, the workspace, the network hosts it
allows, and when it expires. A RED grant lives only for the run that made it
unless the policy file says otherwise. Grants are stored in SQLite beside the
run index, so an 8-hour grant outlives the run that created it.
"""

from __future__ import annotations

import fnmatch
import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from luminaguard.policy.card import DiffCard
from luminaguard.policy.risk import Risk
from luminaguard.store import connect


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


GRANTS_SCHEMA = "CREATE TABLE IF NOT EXISTS grants (id TEXT PRIMARY KEY, until REAL NOT NULL, body TEXT NOT NULL)"


class GrantStore:
    """Grants in SQLite (``<data_dir>/state.db``), plus the policy file's own."""

    def __init__(self, path: Path, static: tuple[Grant, ...] = ()) -> None:
        self.static = static
        self.db = connect(path, "grant store", GRANTS_SCHEMA)

    def add(self, grant: Grant) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO grants (id, until, body) VALUES (?, ?, ?)",
            (grant.id, grant.until, json.dumps(grant.to_dict())),
        )

    def active(self, now: float | None = None) -> list[Grant]:
        now = time.time() if now is None else now
        rows = self.db.execute(
            "SELECT body FROM grants WHERE until > ? ORDER BY until", (now,)
        ).fetchall()
        return [*self.static, *(Grant.from_dict(json.loads(r[0])) for r in rows)]

    def match(self, card: DiffCard, *, workspace: str, run_id: str) -> Grant | None:
        now = time.time()
        return next(
            (
                g
                for g in self.active(now)
                if g.covers(card, workspace=workspace, run_id=run_id, now=now)
            ),
            None,
        )

    def close(self) -> None:
        self.db.close()


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
