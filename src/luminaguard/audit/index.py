"""The SQLite index of runs: what ran, when, how it ended, where its journal is.

It also holds each journal's record count and head hash, updated with every
append, so that ``verify`` notices a journal whose tail was cut off.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from luminaguard.errors import AuditError
from luminaguard.store import connect

MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = []


def migration(fn: Callable[[sqlite3.Connection], None]) -> Callable[[sqlite3.Connection], None]:
    """Register a schema migration; they run in order, each once (``PRAGMA user_version``)."""
    MIGRATIONS.append(fn)
    return fn


@migration
def _create_runs(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            task TEXT NOT NULL,
            started TEXT NOT NULL,
            finished TEXT,
            outcome TEXT,
            path TEXT NOT NULL,
            workspace TEXT,
            model TEXT,
            records INTEGER NOT NULL DEFAULT 0,
            head TEXT
        )"""
    )
    db.execute("CREATE INDEX runs_started ON runs(started)")


COLUMNS = (
    "id",
    "task",
    "started",
    "finished",
    "outcome",
    "path",
    "workspace",
    "model",
    "records",
    "head",
)


class RunIndex:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = connect(path, "run index")
        try:
            self._migrate()
        except sqlite3.Error as exc:
            raise AuditError(f"run index {path} cannot be migrated: {exc}") from exc

    def _migrate(self) -> None:
        if self.db.execute("PRAGMA user_version").fetchone()[0] >= len(MIGRATIONS):
            return
        # Read the version again under the write lock: another process may be
        # migrating the same fresh file at this very moment.
        self.db.execute("BEGIN IMMEDIATE")
        try:
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            for n, step in enumerate(MIGRATIONS[version:], version + 1):
                step(self.db)
                self.db.execute(f"PRAGMA user_version = {n}")
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def add(
        self, run_id: str, *, task: str, started: str, path: Path, workspace: str, model: str
    ) -> None:
        self._write(
            "INSERT INTO runs (id, task, started, path, workspace, model) VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, task, started, str(path), workspace, model),
        )

    def advance(self, run_id: str, records: int, head: str) -> None:
        self._write("UPDATE runs SET records = ?, head = ? WHERE id = ?", (records, head, run_id))

    def finish(self, run_id: str, *, outcome: str, finished: str) -> None:
        self._write(
            "UPDATE runs SET outcome = ?, finished = ? WHERE id = ?", (outcome, finished, run_id)
        )

    def get(self, run_id: str) -> dict[str, Any] | None:
        row = self.db.execute(
            f"SELECT {', '.join(COLUMNS)} FROM runs WHERE id = ?", (run_id,)
        ).fetchone()
        if row is None:
            # Allow a unique prefix, as git does for commits.
            rows = self.db.execute(
                f"SELECT {', '.join(COLUMNS)} FROM runs WHERE id LIKE ? || '%'", (run_id,)
            ).fetchall()
            if len(rows) != 1:
                return None
            row = rows[0]
        return dict(zip(COLUMNS, row, strict=True))

    def list(self) -> list[dict[str, Any]]:
        rows = self.db.execute(
            f"SELECT {', '.join(COLUMNS)} FROM runs ORDER BY started, id"
        ).fetchall()
        return [dict(zip(COLUMNS, row, strict=True)) for row in rows]

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        try:
            self.db.execute(sql, params)
        except sqlite3.Error as exc:
            raise AuditError(f"run index {self.path}: {exc}") from exc

    def close(self) -> None:
        self.db.close()
