"""`run --json`: every event as one JSON line on stdout, nothing else there."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import write_playbook
from tests.test_cli import lg


def test_run_json_writes_one_json_event_per_line(workspace: Path, tmp_path: Path) -> None:
    (workspace / "README.md").write_text("# hi\n")
    pb = write_playbook(
        tmp_path / "p.json",
        [
            {"tool_calls": [{"name": "read_file", "arguments": {"path": "README.md"}}]},
            {
                "tool_calls": [
                    {"name": "write_file", "arguments": {"path": "n.txt", "content": "x" * 100_000}}
                ]
            },
            {"content": "done"},
        ],
    )
    r = lg(
        "run",
        "t",
        "--workspace",
        str(workspace),
        "--playbook",
        str(pb),
        "--approver",
        "none",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "summary" and "end" in kinds
    calls = [e for e in events if e["event"] == "tool_call"]
    assert [c["call"]["name"] for c in calls] == ["read_file", "write_file"]
    assert calls[0]["assessment"]["risk"] == "green"
    denied = next(e for e in events if e["event"] == "decision")
    assert denied["decision"]["approved"] is False and denied["card"]["tool"] == "write_file"
    assert "more characters cut" in calls[1]["call"]["arguments"]["content"]
    summary = events[-1]
    assert summary["outcome"] == "finished" and Path(summary["journal"]).is_file()
    assert summary["run_id"] == events[0]["run_id"]
