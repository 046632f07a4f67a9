"""Opening the project's SQLite files: one way, with one kind of error.

Every store (run index, grants, rate limits, inbox, metrics, swarm queue) is
a file that several processes share: WAL mode so readers never block the
writer, `synchronous=NORMAL` (durable at every checkpoint, never corrupt), a
busy timeout instead of "database is locked", autocommit so each store says
where its transactions are.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from luminaguard.errors import AuditError


def connect(
    path: Path, what: str, schema: str = "", *, timeout_s: float = 10.0, threads: bool = False
) -> sqlite3.Connection:
    """Open (creating it and its schema if needed) the store ``what`` at ``path``.

    ``threads``: the connection is used from more than one thread (the
    caller serialises access)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(
            path, timeout=timeout_s, isolation_level=None, check_same_thread=not threads
        )
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        if schema:
            db.executescript(schema)
    except (sqlite3.Error, OSError) as exc:
        raise AuditError(f"{what} {path} cannot be opened: {exc}") from exc
    return db
