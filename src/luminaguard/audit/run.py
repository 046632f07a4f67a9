"""A run's audit record: its journal and its row in the index, kept in step."""

from __future__ import annotations

import fcntl
import os
import secrets
import time
from pathlib import Path
from typing import Any

from luminaguard.audit.index import RunIndex
from luminaguard.audit.journal import Journal, now_iso, read_records, verify
from luminaguard.audit.signing import Signer
from luminaguard.errors import AuditError, RunBusy, UsageError
from luminaguard.store import private_file


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def lock_path(data_dir: Path, run_id: str) -> Path:
    return data_dir / "runs" / f"{run_id}.lock"


def hold(data_dir: Path, run_id: str) -> int | None:
    """Take the run's lock (held while the process that runs it lives); the
    descriptor, or None when another process holds it."""
    fd = private_file(lock_path(data_dir, run_id))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def is_live(data_dir: Path, run_id: str) -> bool:
    """Whether a process is running ``run_id`` now (it holds the run's lock)."""
    if not lock_path(data_dir, run_id).exists():
        return False
    fd = hold(data_dir, run_id)
    if fd is None:
        return True
    os.close(fd)
    return False


def status_of(data_dir: Path, row: dict[str, Any]) -> str:
    """`running`, `interrupted` (no process holds it and it never finished), or its outcome."""
    if row["outcome"] is not None:
        return str(row["outcome"])
    return "running" if is_live(data_dir, str(row["id"])) else "interrupted"


def started_with(data_dir: Path, run_id: str) -> dict[str, Any]:
    """What a run was started with (its first record): policy, approver, sandbox, steps."""
    index = RunIndex(data_dir / "index.db")
    row = index.get(run_id)
    index.close()
    if row is None:
        raise UsageError(f"no run {run_id!r} in the audit index (see `luminaguard audit list`)")
    records = read_records(Path(row["path"]))
    first = records[0]["data"] if records else {}
    return dict(first.get("options") or {})


class RunRecorder:
    """Writes one run: every record to the journal (fsynced), then the index head.
    Holds the run's lock while the process lives, so a run is resumed by one
    process at a time, and a run nobody holds is known to be interrupted."""

    def __init__(
        self,
        data_dir: Path,
        *,
        task: str,
        workspace: Path,
        model: str,
        run_id: str | None = None,
        new_id: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        """A new run (with the id ``new_id`` if given: a fleet workflow's), or
        the run ``run_id`` reopened (see ``resume``)."""
        self.index = RunIndex(data_dir / "index.db")
        if run_id is not None:  # resuming: see `resume`
            row = self.index.get(run_id)
            assert row is not None
            self.run_id: str = str(row["id"])
            self._lock = hold(data_dir, self.run_id)
            if self._lock is None:
                raise RunBusy(
                    f"run {self.run_id} is still running in another process; it can be resumed once it stops"
                )
            self.path = Path(row["path"])
            records = read_records(self.path)
            self.journal = Journal(
                self.path, head=records[-1]["hash"], seq=len(records), signer=Signer.for_user()
            )
            return
        self.run_id = new_id or new_run_id()
        if new_id is not None and self.index.get(new_id) is not None:
            raise UsageError(f"run {new_id} exists already")
        self._lock = hold(data_dir, self.run_id)
        self.path = data_dir / "runs" / f"{self.run_id}.jsonl"
        self.journal = Journal(self.path, signer=Signer.for_user())
        started = now_iso()
        self.index.add(
            self.run_id,
            task=task,
            started=started,
            path=self.path,
            workspace=str(workspace),
            model=model,
        )
        self.record(
            "run_started",
            {
                "run_id": self.run_id,
                "task": task,
                "workspace": str(workspace),
                "model": model,
                "options": options or {},
            },
        )

    @classmethod
    def resume(
        cls, data_dir: Path, run_id: str
    ) -> tuple[RunRecorder, dict[str, Any], list[dict[str, Any]]]:
        """Reopen an unfinished run whose journal is intact; returns it, its index row and records."""
        index = RunIndex(data_dir / "index.db")
        row = index.get(run_id)
        index.close()
        if row is None:
            raise UsageError(f"no run {run_id!r} in the audit index (see `luminaguard audit list`)")
        if row["outcome"] is not None:
            raise UsageError(
                f"run {row['id']} already ended ({row['outcome']}); only an interrupted run can be resumed"
            )
        if is_live(data_dir, str(row["id"])):
            raise RunBusy(
                f"run {row['id']} is still running in another process; it can be resumed once it stops"
            )
        problems = verify(Path(row["path"]), row["records"], row["head"])
        if problems:
            raise AuditError(
                f"run {row['id']} cannot be resumed: its journal does not verify ({problems[0]})"
            )
        records = read_records(Path(row["path"]))
        rec = cls(
            data_dir,
            task=row["task"],
            workspace=Path(row["workspace"] or "."),
            model=row["model"] or "",
            run_id=row["id"],
        )
        return rec, row, records

    def record(self, type: str, data: dict[str, Any]) -> dict[str, Any]:
        rec = self.journal.append(type, data)
        self.index.advance(self.run_id, self.journal.seq, self.journal.head)
        return rec

    def finish(self, outcome: str, data: dict[str, Any]) -> None:
        self.record("run_finished", {"outcome": outcome, **data})
        self.index.finish(self.run_id, outcome=outcome, finished=now_iso())
        self.close()

    def close(self) -> None:
        """Let go of the run (its journal, its lock): ended, or to be resumed
        by another process (a fleet worker's next step). Idempotent."""
        self.journal.close()
        self.index.close()
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None
