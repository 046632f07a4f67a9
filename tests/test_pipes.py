"""A closed stdout never kills a run: `luminaguard run … | head` finishes the
run (journaled), exits with the run's code and prints no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from luminaguard.audit.journal import read_records


def test_a_run_whose_reader_went_away_still_finishes(
    workspace: Path, tmp_path: Path, data_dir: Path
) -> None:
    (workspace / "a.txt").write_text("x\n" * 50)
    step = {"tool_calls": [{"name": "read_file", "arguments": {"path": "a.txt"}}]}
    playbook = tmp_path / "p.json"
    playbook.write_text(json.dumps({"steps": [step] * 6 + [{"content": "all read"}]}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "luminaguard", "run", "read it", "--playbook", str(playbook),
         "--workspace", str(workspace)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, encoding="utf-8",
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()  # as `head -1` does
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    [journal] = (data_dir / "runs").glob("*.jsonl")
    assert read_records(journal)[-1]["data"]["outcome"] == "finished"


def test_a_listing_cut_short_by_its_reader_is_not_an_error() -> None:
    r = subprocess.run(
        f"{sys.executable} -m luminaguard --help | head -1",
        shell=True, capture_output=True, encoding="utf-8", timeout=60, check=False,
    )  # fmt: skip
    assert "Traceback" not in r.stderr
