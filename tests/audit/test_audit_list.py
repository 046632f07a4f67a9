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


def test_audit_show_says_each_calls_command_each_reason_and_what_changed(
    workspace: Path, tmp_path: Path
) -> None:
    from tests.conftest import write_playbook

    pb = write_playbook(
        tmp_path / "p.json",
        [
            {"tool_calls": [{"name": "shell", "arguments": {"command": "echo hi > made.txt"}}]},
            {"content": "done"},
        ],
    )
    policy = tmp_path / "policy.toml"
    policy.write_text('auto_approve = ["green", "yellow"]\n')
    r = lg(
        "run", "t", "--workspace", str(workspace), "--playbook", str(pb), "--policy", str(policy)
    )
    assert r.returncode == 0, r.stderr
    run_id = json.loads(lg("audit", "list", "--json").stdout)[-1]["id"]
    shown = lg("audit", "show", run_id).stdout
    assert "shell 'echo hi > made.txt' [yellow]" in shown
    assert "approved by policy" in shown and "yellow actions run without asking" in shown
    assert "shell: ok (created made.txt)" in shown
