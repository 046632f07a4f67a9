"""`audit list` for a person: a header, newest first, `--limit`; JSON stays oldest first."""

from __future__ import annotations

import json
from pathlib import Path

from luminaguard.audit.index import RunIndex
from luminaguard.audit.journal import now_iso
from tests.test_cli import lg


def test_audit_list_is_newest_first_with_a_header_and_a_limit(data_dir: Path) -> None:
    index = RunIndex(data_dir / "index.db")
    for n, day in enumerate(("01", "02", "03")):
        index.add(
            f"run-{n}",
            task=f"task {n}\nsecond line \x1b[31m",
            started=f"2026-12-{day}T10:00:00.000000Z",
            path=data_dir / f"run-{n}.jsonl",
            workspace="/w",
            model="m",
        )
        index.finish(f"run-{n}", outcome="finished", finished=now_iso())
    index.close()
    lines = lg("audit", "list").stdout.splitlines()
    assert lines[0].split()[:2] == ["RUN", "STARTED"]
    assert [line.split()[0] for line in lines[1:]] == ["run-2", "run-1", "run-0"]
    assert "\x1b" not in "".join(lines), "a task's escape sequence reached the terminal"
    assert [
        line.split()[0] for line in lg("audit", "list", "--limit", "2").stdout.splitlines()[1:]
    ] == ["run-2", "run-1"]
    listed = json.loads(lg("audit", "list", "--json", "--limit", "2").stdout)
    assert [r["id"] for r in listed] == ["run-1", "run-2"]
    bad = lg("audit", "list", "--limit", "0")
    assert bad.returncode == 2 and "--limit must be at least 1" in bad.stderr
