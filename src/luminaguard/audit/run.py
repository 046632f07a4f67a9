"""A run's audit record: its journal and its row in the index, kept in step."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

from luminaguard.audit.index import RunIndex
from luminaguard.audit.journal import Journal, now_iso


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


class RunRecorder:
    """Writes one run: every record to the journal (fsynced), then the index head."""

    def __init__(self, data_dir: Path, *, task: str, workspace: Path, model: str) -> None:
        self.run_id = new_run_id()
        self.path = data_dir / "runs" / f"{self.run_id}.jsonl"
        self.index = RunIndex(data_dir / "index.db")
        self.journal = Journal(self.path)
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
            {"run_id": self.run_id, "task": task, "workspace": str(workspace), "model": model},
        )

    def record(self, type: str, data: dict[str, Any]) -> dict[str, Any]:
        rec = self.journal.append(type, data)
        self.index.advance(self.run_id, self.journal.seq, self.journal.head)
        return rec

    def finish(self, outcome: str, data: dict[str, Any]) -> None:
        self.record("run_finished", {"outcome": outcome, **data})
        self.index.finish(self.run_id, outcome=outcome, finished=now_iso())
        self.journal.close()
        self.index.close()
