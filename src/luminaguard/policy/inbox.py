"""The shared approval inbox: pending Diff Cards of every agent on this machine.

Runs started with ``--approver inbox`` (and swarm workers) put each card that
needs a person here and wait for the answer; ``luminaguard approvals`` shows
them oldest first and writes the decisions. SQLite in WAL mode is the only
channel, so any number of agents and one or more people can share it.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from luminaguard.policy.card import DiffCard
from luminaguard.policy.grants import new_grant
from luminaguard.protocols import ApprovalRequest, Decision
from luminaguard.store import connect

POLL_S = 0.05


@dataclass(frozen=True)
class Pending:
    id: int
    run_id: str
    agent: str
    task: str
    step: int
    card: DiffCard
    created: float
    status: str
    decided_by: str | None
    reason: str | None
    grant_hours: float | None

    @property
    def approved_with_grant(self) -> bool:
        return self.status == "approved" and bool(self.grant_hours)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "run_id": self.run_id,
            "agent": self.agent,
            "task": self.task,
            "step": self.step,
            "created": self.created,
            "status": self.status,
            "decided_by": self.decided_by,
            "reason": self.reason,
            "card": self.card.to_dict(),
        }


COLUMNS = "id, run_id, agent, task, step, card, created, status, decided_by, reason, grant_hours"


INBOX_SCHEMA = """CREATE TABLE IF NOT EXISTS pending (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, agent TEXT NOT NULL,
                    task TEXT NOT NULL, step INTEGER NOT NULL, card TEXT NOT NULL, card_hash TEXT NOT NULL,
                    created REAL NOT NULL, status TEXT NOT NULL DEFAULT 'pending', decided_by TEXT,
                    reason TEXT, grant_hours REAL, decided_at REAL)"""


class InboxStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = connect(path, "approval inbox", INBOX_SCHEMA, threads=True)

    def put(self, card: DiffCard) -> int:
        ctx = card.context
        cur = self.db.execute(
            "INSERT INTO pending (run_id, agent, task, step, card, card_hash, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                str(ctx.get("run_id", "")),
                str(ctx.get("agent", "")),
                str(ctx.get("task", "")),
                int(ctx.get("step", 0)),
                json.dumps(card.to_dict()),
                card.hash,
                time.time(),
            ),
        )
        return int(cur.lastrowid or 0)

    def get(self, item_id: int) -> Pending | None:
        row = self.db.execute(f"SELECT {COLUMNS} FROM pending WHERE id = ?", (item_id,)).fetchone()
        return _pending(row) if row else None

    def pending(self) -> list[Pending]:
        rows = self.db.execute(
            f"SELECT {COLUMNS} FROM pending WHERE status = 'pending' ORDER BY created, id"
        ).fetchall()
        return [_pending(r) for r in rows]

    def decide(
        self,
        item_id: int,
        *,
        approved: bool,
        by: str,
        reason: str = "",
        grant_hours: float | None = None,
    ) -> bool:
        """Record a decision; False if the item is unknown or already decided."""
        cur = self.db.execute(
            "UPDATE pending SET status = ?, decided_by = ?, reason = ?, grant_hours = ?, decided_at = ? WHERE id = ? AND status = 'pending'",
            ("approved" if approved else "denied", by, reason, grant_hours, time.time(), item_id),
        )
        return cur.rowcount == 1

    def related(self, item_id: int) -> list[Pending]:
        """Pending cards from the same step of the same run (decided together)."""
        item = self.get(item_id)
        if item is None:
            return []
        rows = self.db.execute(
            f"SELECT {COLUMNS} FROM pending WHERE run_id = ? AND step = ? AND status = 'pending' ORDER BY id",
            (item.run_id, item.step),
        ).fetchall()
        return [_pending(r) for r in rows]

    def expire(self, item_id: int) -> None:
        self.db.execute(
            "UPDATE pending SET status = 'expired', decided_at = ? WHERE id = ? AND status = 'pending'",
            (time.time(), item_id),
        )

    def close(self) -> None:
        self.db.close()


def _pending(row: tuple[Any, ...]) -> Pending:
    i, run_id, agent, task, step, card, created, status, by, reason, hours = row
    return Pending(
        i,
        run_id,
        agent,
        task,
        step,
        DiffCard.from_dict(json.loads(card)),
        created,
        status,
        by,
        reason,
        hours,
    )


class InboxApprover:
    """Puts the card in the shared inbox and waits (bounded) for a person's answer."""

    def __init__(self, path: Path, *, timeout_s: float = 3600.0) -> None:
        self.store = InboxStore(path)
        self.timeout_s = timeout_s

    async def decide(self, request: ApprovalRequest) -> Decision:
        item_id = self.store.put(request.card)
        deadline = time.monotonic() + self.timeout_s
        try:
            while time.monotonic() < deadline:
                item = self.store.get(item_id)
                if item is not None and item.status != "pending":
                    who = item.decided_by or "someone"
                    grant = (
                        new_grant(request.card, item.grant_hours or 0)
                        if item.approved_with_grant
                        else None
                    )
                    reason = item.reason or (
                        "approved in the inbox"
                        if item.status == "approved"
                        else "denied in the inbox"
                    )
                    return Decision(
                        item.status == "approved", who, reason, grant=grant, principal=who
                    )
                await asyncio.sleep(POLL_S)
        except BaseException:
            self.store.expire(item_id)
            raise
        self.store.expire(item_id)
        return Decision(False, "inbox", f"no decision within {self.timeout_s:g} s")
