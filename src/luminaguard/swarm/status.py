"""A swarm's status (its items, its live agents and the approvals they wait
for), and the swarms this user has, so that one page can show them all.

Each swarm's queue lives in its repository (``.luminaguard/swarm.db``); the
data directory keeps the list of those repositories (``swarms.db``), added
to by `swarm add` and `swarm run`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from luminaguard.store import connect
from luminaguard.swarm.queue import queue_path

SCHEMA = "CREATE TABLE IF NOT EXISTS swarms (repo TEXT PRIMARY KEY, seen REAL NOT NULL);"


def remember(data_dir: Path, repo: Path) -> None:
    """Note ``repo`` as one of this user's swarms."""
    db = connect(data_dir / "swarms.db", "swarm list", SCHEMA)
    try:
        db.execute(
            "INSERT INTO swarms (repo, seen) VALUES (?, ?) ON CONFLICT(repo) DO UPDATE SET seen = excluded.seen",
            (str(repo), time.time()),
        )
    finally:
        db.close()


def known(data_dir: Path) -> list[Path]:
    """This user's swarms whose queue is still there, the latest used first."""
    path = data_dir / "swarms.db"
    if not path.exists():
        return []
    db = connect(path, "swarm list", SCHEMA)
    try:
        rows = db.execute("SELECT repo FROM swarms ORDER BY seen DESC").fetchall()
    finally:
        db.close()
    return [Path(r[0]) for r in rows if queue_path(Path(r[0])).is_file()]


def status(queue: Any, data_dir: Path) -> dict[str, Any]:
    """Counts, items and live agents of ``queue``, each agent with the
    approvals its run waits for in ``data_dir``'s inbox."""
    from luminaguard.policy.inbox import InboxStore

    inbox = InboxStore(data_dir / "inbox.db")
    try:
        waiting: dict[str, int] = {}
        for p in inbox.pending():
            waiting[p.run_id] = waiting.get(p.run_id, 0) + 1
    finally:
        inbox.close()
    agents = [
        {**a, "pending_approvals": waiting.get(a["run_id"] or "", 0)}
        for a in queue.agents()
        if a["state"] not in ("stopped", "gone", "replaced")
    ]
    details = [
        {k: i[k] for k in ("id", "state", "attempts", "completions", "branch", "task", "reasons")}
        for i in queue.details()
    ]
    return {"items": queue.counts(), "items_detail": details, "agents": agents}
