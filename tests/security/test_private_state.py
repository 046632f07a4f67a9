"""Journals and state are private: the data directory is 0700 and every
journal, index, store, log and token file in it 0600, created that way."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path


def modes(root: Path) -> dict[str, int]:
    return {
        str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode)
        for p in [root, *root.rglob("*")]
        if "mcp-cache" not in p.parts
    }


def test_a_run_leaves_only_private_files_in_the_data_dir(
    workspace: Path, data_dir: Path, tmp_path: Path
) -> None:
    playbook = tmp_path / "p.json"
    playbook.write_text(json.dumps({"steps": [{"content": "nothing to do"}]}))
    old = os.umask(0o022)  # the usual umask: files would be 0644 by default
    try:
        r = subprocess.run(
            [sys.executable, "-m", "luminaguard", "run", "look", "--playbook", str(playbook),
             "--workspace", str(workspace)],
            capture_output=True, encoding="utf-8", timeout=60, check=False,
        )  # fmt: skip
    finally:
        os.umask(old)
    assert r.returncode == 0, r.stderr
    found = modes(data_dir)
    assert any(name.endswith(".jsonl") for name in found), found
    assert any(name.endswith(".db") for name in found), found
    loose = {name: f"{mode:o}" for name, mode in found.items() if mode & 0o077}
    assert loose == {}, loose
    assert found["."] == 0o700


def test_doctor_warns_about_a_data_dir_others_can_read(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "index.db").write_text("")
    os.chmod(data_dir, 0o755)
    os.chmod(data_dir / "index.db", 0o644)
    r = subprocess.run(
        [sys.executable, "-m", "luminaguard", "doctor", "--json"],
        capture_output=True, encoding="utf-8", timeout=120, check=False,
    )  # fmt: skip
    check = next(c for c in json.loads(r.stdout)["checks"] if c["name"] == "private state")
    assert check["status"] == "warn" and "index.db" in check["detail"]
