"""A run holds a lock while it lives: it cannot be resumed while it runs, a
run nobody holds shows as interrupted with how to resume it, and a resumed
run keeps the policy (and approver, sandbox, step limit) it was started with."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from luminaguard.audit.index import RunIndex


def lg(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "luminaguard", *args],
        capture_output=True, encoding="utf-8", cwd=cwd, timeout=120, check=False,
    )  # fmt: skip


def wait_for_run(data_dir: Path, deadline_s: float = 30.0) -> str:
    """The id of the first run in the index, once a step of it is journaled."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if (data_dir / "index.db").exists():
            runs = RunIndex(data_dir / "index.db").list()
            if runs and runs[0]["records"] >= 2:
                return str(runs[0]["id"])
        time.sleep(0.05)
    raise AssertionError("the run never started")


def test_a_live_run_is_not_resumed_and_a_killed_one_resumes_with_its_policy(
    workspace: Path, data_dir: Path, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('auto_approve = ["green", "yellow"]\n')
    playbook = tmp_path / "p.json"
    playbook.write_text(
        json.dumps(
            {
                "steps": [
                    {"content": "thinking", "tool_calls": [{"name": "list_dir", "arguments": {}}]},
                    {
                        "tool_calls": [
                            {"name": "write_file", "arguments": {"path": "new.txt", "content": "x"}}
                        ],
                        "delay_ms": 8000,
                    },
                    {"content": "done"},
                ]
            }
        )
    )
    first = subprocess.Popen(
        [sys.executable, "-m", "luminaguard", "run", "write it", "--playbook", str(playbook),
         "--workspace", str(workspace), "--policy", str(policy)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        run_id = wait_for_run(data_dir)
        live = lg("run", "--resume", run_id, "--workspace", str(workspace), cwd=workspace)
        assert live.returncode == 2, live.stderr
        assert "still running" in live.stderr and "Traceback" not in live.stderr
        listed = lg("audit", "list", cwd=workspace).stdout
        assert "running" in listed and "interrupted" not in listed
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    listed = lg("audit", "list", cwd=workspace).stdout
    assert "interrupted" in listed and f"luminaguard run --resume {run_id}" in listed
    # No --policy this time: the run's own policy still lets the new file through.
    resumed = lg(
        "run", "--resume", run_id, "--workspace", str(workspace), "--approver", "none",
        cwd=workspace,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert (workspace / "new.txt").read_text() == "x"
