"""Opening the project's SQLite files: one way, with one kind of error.

Every store (run index, grants, rate limits, inbox, metrics, swarm queue) is
a file that several processes share: WAL mode so readers never block the
writer, `synchronous=NORMAL` (durable at every checkpoint, never corrupt), a
busy timeout instead of "database is locked", autocommit so each store says
where its transactions are.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from luminaguard.errors import AuditError

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_dir(path: Path) -> Path:
    """``path`` as a directory only its owner can enter (created so: no window
    in which another local user could open a file in it)."""
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    return path


def private_file(path: Path) -> int:
    """Open ``path`` to append, created 0600 in a private directory; the descriptor."""
    private_dir(path.parent)
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE)


@contextlib.contextmanager
def exclusive(lock: Path) -> Iterator[None]:
    """Held by one process at a time: an flock on the file ``lock`` (created,
    with its directory, if need be); the others wait. Let go when the block
    ends or the process dies."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def connect(
    path: Path, what: str, schema: str = "", *, timeout_s: float = 10.0, threads: bool = False
) -> sqlite3.Connection:
    """Open (creating it and its schema if needed) the store ``what`` at ``path``.

    ``threads``: the connection is used from more than one thread (the
    caller serialises access)."""
    try:
        # In a private directory, so the moment before the chmod is no window.
        # Never open and close a descriptor of a database file ourselves:
        # closing any descriptor drops every POSIX lock this process holds
        # on that file, other connections' included.
        private_dir(path.parent)
        existed = path.exists()
        db = sqlite3.connect(
            path, timeout=timeout_s, isolation_level=None, check_same_thread=not threads
        )
        if not existed:
            # Before the first write: the -wal and -shm files take its mode.
            os.chmod(path, PRIVATE_FILE)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        if schema:
            db.executescript(schema)
    except (sqlite3.Error, OSError) as exc:
        raise AuditError(f"{what} {path} cannot be opened: {exc}") from exc
    return db
