"""One Ctrl-C at the approval prompt denies the card and ends the run
cleanly, journaled: no second Ctrl-C, no waiting for input that never comes."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from luminaguard.audit.journal import read_records


def test_ctrl_c_at_the_prompt_denies_and_ends_the_run(
    workspace: Path, data_dir: Path, tmp_path: Path
) -> None:
    playbook = tmp_path / "p.json"
    call = {"name": "write_file", "arguments": {"path": "new.txt", "content": "x"}}
    playbook.write_text(json.dumps({"steps": [{"tool_calls": [call]}, {"content": "never"}]}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "luminaguard", "run", "write", "--playbook", str(playbook),
         "--workspace", str(workspace), "--approver", "prompt"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    seen = b""
    deadline = time.monotonic() + 60
    try:
        while b"Approve?" not in seen:
            left = deadline - time.monotonic()
            assert left > 0, seen
            ready, _, _ = select.select([proc.stdout], [], [], left)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 65536)
                assert chunk, seen
                seen += chunk
        os.kill(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 4, (code, proc.stderr.read() if proc.stderr else "")
    assert not (workspace / "new.txt").exists()
    [journal] = (data_dir / "runs").glob("*.jsonl")
    records = read_records(journal)
    decision = next(r["data"] for r in records if r["type"] == "decision")
    assert not decision["approved"] and "interrupted" in decision["reason"]
    assert records[-1]["type"] == "run_finished" and records[-1]["data"]["outcome"] == "denied"
