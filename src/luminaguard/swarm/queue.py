"""The work queue: SQLite in WAL mode in the repository's `.luminaguard/`.

An item is claimed with one atomic statement that takes the best queued item
and gives it a lease (owner, random token, expiry). Heartbeats extend the
lease; completing needs the current token, so a worker whose lease was taken
away cannot complete. A reaper returns expired leases to the queue; after
`max_attempts` an item is `failed`, with the reason of each attempt.
`completions` counts how often an item was completed: it must end at 1.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from luminaguard.errors import LeaseLost
from luminaguard.store import connect

BUSY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Item:
    id: str
    task: str
    playbook: str | None
    model: str | None
    priority: int
    attempts: int
    token: str
    branch: str


ITEM_COLUMNS = "id, task, playbook, model, priority, attempts, lease_token, branch"


def queue_path(repo: Path) -> Path:
    """Where a repository's swarm queue is."""
    return repo / ".luminaguard" / "swarm.db"


class Queue:
    def __init__(self, path: Path, *, max_attempts: int = 3) -> None:
        self.path = path
        self.max_attempts = max_attempts
        self.db = connect(
            path,
            "swarm queue",
            """
            CREATE TABLE IF NOT EXISTS items (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT UNIQUE NOT NULL,
                task TEXT NOT NULL,
                playbook TEXT,
                model TEXT,
                priority INTEGER NOT NULL DEFAULT 0,
                state TEXT NOT NULL DEFAULT 'queued',
                attempts INTEGER NOT NULL DEFAULT 0,
                max_attempts INTEGER NOT NULL,
                lease_owner TEXT,
                lease_token TEXT,
                lease_expires REAL,
                completions INTEGER NOT NULL DEFAULT 0,
                branch TEXT NOT NULL,
                reasons TEXT NOT NULL DEFAULT '[]',
                result TEXT,
                first_claimed REAL,
                created REAL NOT NULL,
                updated REAL NOT NULL
            );
            CREATE INDEX IF NOT EXISTS items_claim ON items(state, priority DESC, seq);
            CREATE TABLE IF NOT EXISTS agents (
                id TEXT PRIMARY KEY,
                pid INTEGER,
                state TEXT NOT NULL,
                item TEXT,
                run_id TEXT,
                heartbeat REAL NOT NULL,
                last_action TEXT,
                started REAL NOT NULL
            );
            """,
            timeout_s=BUSY_TIMEOUT_S,
            threads=True,
        )

    def close(self) -> None:
        self.db.close()

    # --- items ------------------------------------------------------------

    def add(
        self,
        task: str,
        *,
        playbook: str | None = None,
        model: str | None = None,
        priority: int = 0,
        count: int = 1,
    ) -> list[str]:
        now = time.time()
        ids = []
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for _ in range(count):
                item_id = secrets.token_hex(4)
                self.db.execute(
                    "INSERT INTO items (id, task, playbook, model, priority, max_attempts, branch, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        item_id,
                        task,
                        playbook,
                        model,
                        priority,
                        self.max_attempts,
                        f"lg/{item_id}",
                        now,
                        now,
                    ),
                )
                ids.append(item_id)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return ids

    def states(self, ids: list[str]) -> dict[str, str]:
        """The state of each of ``ids`` that exists."""
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(f"SELECT id, state FROM items WHERE id IN ({marks})", ids)
        return dict(rows.fetchall())

    def remove(self, ids: list[str]) -> list[str]:
        """Drop items that are not running (a running one is left); the ids dropped."""
        return self._change(ids, "DELETE FROM items WHERE id = ? AND state != 'running'")

    def retry(self, ids: list[str]) -> list[str]:
        """Put failed items back in the queue with their attempts reset (the
        reasons of the earlier attempts are kept); the ids requeued."""
        now = time.time()
        return self._change(
            ids,
            "UPDATE items SET state = 'queued', attempts = 0, updated = ? WHERE id = ? AND state = 'failed'",
            lambda item_id: (now, item_id),
        )

    def clear(self, states: tuple[str, ...] = ("done", "failed")) -> int:
        """Drop every item in ``states``; how many went."""
        marks = ",".join("?" * len(states))
        return self.db.execute(f"DELETE FROM items WHERE state IN ({marks})", states).rowcount

    def _change(
        self,
        ids: list[str],
        sql: str,
        params: Any = None,
    ) -> list[str]:
        changed = []
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for item_id in ids:
                cur = self.db.execute(sql, params(item_id) if params else (item_id,))
                if cur.rowcount == 1:
                    changed.append(item_id)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return changed

    def claim(self, owner: str, lease_s: float) -> Item | None:
        """Take the best queued item with a fresh lease, in one statement."""
        now = time.time()
        token = secrets.token_hex(8)
        row = self.db.execute(
            f"""UPDATE items SET state = 'running', lease_owner = ?, lease_token = ?, lease_expires = ?,
                   attempts = attempts + 1, updated = ?, first_claimed = COALESCE(first_claimed, ?)
               WHERE seq = (SELECT seq FROM items WHERE state = 'queued' ORDER BY priority DESC, seq LIMIT 1)
               RETURNING {ITEM_COLUMNS}""",
            (owner, token, now + lease_s, now, now),
        ).fetchone()
        return Item(*row) if row else None

    def heartbeat(self, item_id: str, token: str, lease_s: float) -> None:
        cur = self.db.execute(
            "UPDATE items SET lease_expires = ? WHERE id = ? AND lease_token = ? AND state = 'running'",
            (time.time() + lease_s, item_id, token),
        )
        if cur.rowcount != 1:
            raise LeaseLost(f"the lease on {item_id} was lost")

    def complete(self, item_id: str, token: str, result: dict[str, Any] | None = None) -> None:
        cur = self.db.execute(
            """UPDATE items SET state = 'done', completions = completions + 1, lease_owner = NULL,
                   lease_token = NULL, lease_expires = NULL, result = ?, updated = ?
               WHERE id = ? AND lease_token = ? AND state = 'running'""",
            (json.dumps(result or {}), time.time(), item_id, token),
        )
        if cur.rowcount != 1:
            raise LeaseLost(f"cannot complete {item_id}: the lease is no longer this worker's")

    def fail(self, item_id: str, token: str, reason: str, *, count_attempt: bool = True) -> str:
        """End this attempt: back to the queue, or `failed` when attempts are used up.
        A graceful release (``count_attempt=False``) gives the attempt back."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            row = self.db.execute(
                "SELECT attempts, max_attempts, reasons FROM items WHERE id = ? AND lease_token = ? AND state = 'running'",
                (item_id, token),
            ).fetchone()
            if row is None:
                self.db.execute("ROLLBACK")
                raise LeaseLost(f"cannot release {item_id}: the lease is no longer this worker's")
            attempts, max_attempts, reasons = row
            if not count_attempt:
                attempts -= 1
            else:
                reasons = json.dumps([*json.loads(reasons), f"attempt {attempts}: {reason}"])
            state = "failed" if attempts >= max_attempts else "queued"
            self.db.execute(
                "UPDATE items SET state = ?, attempts = ?, reasons = ?, lease_owner = NULL, lease_token = NULL, lease_expires = NULL, updated = ? WHERE id = ?",
                (state, attempts, reasons, time.time(), item_id),
            )
            self.db.execute("COMMIT")
            return state
        except LeaseLost:
            raise
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def reap(self, now: float | None = None, owner: str | None = None) -> list[str]:
        """Return expired leases (or all of ``owner``'s) to the queue; failed when out of attempts."""
        now = time.time() if now is None else now
        self.db.execute("BEGIN IMMEDIATE")
        try:
            if owner is None:
                rows = self.db.execute(
                    "SELECT id, attempts, max_attempts, reasons, lease_owner FROM items WHERE state = 'running' AND lease_expires < ?",
                    (now,),
                ).fetchall()
            else:
                rows = self.db.execute(
                    "SELECT id, attempts, max_attempts, reasons, lease_owner FROM items WHERE state = 'running' AND lease_owner = ?",
                    (owner,),
                ).fetchall()
            for item_id, attempts, max_attempts, reasons, lease_owner in rows:
                why = "its worker stopped" if owner else "the lease expired"
                reasons = json.dumps(
                    [*json.loads(reasons), f"attempt {attempts}: {why} ({lease_owner})"]
                )
                state = "failed" if attempts >= max_attempts else "queued"
                self.db.execute(
                    "UPDATE items SET state = ?, reasons = ?, lease_owner = NULL, lease_token = NULL, lease_expires = NULL, updated = ? WHERE id = ?",
                    (state, reasons, now, item_id),
                )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return [r[0] for r in rows]

    def counts(self) -> dict[str, int]:
        out = {"queued": 0, "running": 0, "done": 0, "failed": 0}
        for state, n in self.db.execute("SELECT state, COUNT(*) FROM items GROUP BY state"):
            out[state] = n
        return out

    def details(self) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT id, state, attempts, completions, branch, task, reasons, lease_owner FROM items ORDER BY seq"
        ).fetchall()
        return [
            {
                "id": r[0],
                "state": r[1],
                "attempts": r[2],
                "completions": r[3],
                "branch": r[4],
                "task": r[5],
                "reasons": json.loads(r[6]),
                "agent": r[7],
            }
            for r in rows
        ]

    def busy_window(self) -> tuple[float, float] | None:
        """From the first claim to the last completion (for throughput)."""
        row = self.db.execute(
            "SELECT MIN(first_claimed), MAX(updated) FROM items WHERE state = 'done'"
        ).fetchone()
        return (row[0], row[1]) if row and row[0] is not None else None

    def running_items(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT id FROM items WHERE state = 'running'")}

    # --- agents -----------------------------------------------------------

    def agent_beat(
        self,
        agent_id: str,
        *,
        pid: int,
        state: str,
        item: str | None = None,
        run_id: str | None = None,
        action: str | None = None,
    ) -> None:
        now = time.time()
        self.db.execute(
            """INSERT INTO agents (id, pid, state, item, run_id, heartbeat, last_action, started) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(id) DO UPDATE SET pid = excluded.pid, state = excluded.state, item = excluded.item,
                   run_id = excluded.run_id, heartbeat = excluded.heartbeat,
                   last_action = COALESCE(excluded.last_action, agents.last_action)""",
            (agent_id, pid, state, item, run_id, now, action, now),
        )

    def agents(self) -> list[dict[str, Any]]:
        now = time.time()
        rows = self.db.execute(
            "SELECT id, pid, state, item, run_id, heartbeat, last_action FROM agents ORDER BY id"
        ).fetchall()
        return [
            {
                "id": r[0],
                "pid": r[1],
                "state": r[2],
                "item": r[3],
                "run_id": r[4],
                "heartbeat_age_s": round(now - r[5], 2),
                "last_action": r[6],
            }
            for r in rows
        ]

    def agent_gone(self, agent_id: str, state: str = "stopped") -> None:
        self.db.execute("UPDATE agents SET state = ?, item = NULL WHERE id = ?", (state, agent_id))
