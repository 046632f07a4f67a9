"""The grant store: scoped, expiring permissions (``core.grant.Grant``) that
answer an approval in advance. A RED grant lives only for the run that made it
unless the policy file says otherwise. Grants are stored in SQLite beside the
run index, so an 8-hour grant outlives the run that created it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from luminaguard.core.card import DiffCard
from luminaguard.core.grant import Grant
from luminaguard.policy.shell import simple_commands
from luminaguard.store import connect

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
        args = card.arguments if isinstance(card.arguments, dict) else {}
        commands = simple_commands(str(args.get("command", ""))) if card.tool == "shell" else None
        return next(
            (
                g
                for g in self.active(now)
                if g.covers(card, workspace=workspace, run_id=run_id, now=now, commands=commands)
            ),
            None,
        )

    def revoke(self, grant_id: str | None = None) -> int:
        """Drop one stored grant (or, with None, every one); how many went."""
        if grant_id is None:
            return self.db.execute("DELETE FROM grants").rowcount
        return self.db.execute("DELETE FROM grants WHERE id = ?", (grant_id,)).rowcount

    def close(self) -> None:
        self.db.close()
