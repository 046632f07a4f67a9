"""`luminaguard chat`: follow-up messages are turns of one run, in one journal,
every tool call through the same Approval Cliff."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from pathlib import Path

from tests.conftest import LUMINAGUARD, write_playbook
from tests.test_cli import lg

TURNS = [
    {"tool_calls": [{"name": "list_dir", "arguments": {}}]},
    {"content": "There is a.txt."},
    {"tool_calls": [{"name": "write_file", "arguments": {"path": "b.txt", "content": "bee"}}]},
    {"content": "Wrote b.txt."},
]


def journal(run_id: str) -> list[dict[str, object]]:
    shown = json.loads(lg("audit", "show", run_id, "--json").stdout)
    return shown["records"] if isinstance(shown, dict) else shown


def test_piped_messages_are_turns_of_one_run(workspace: Path, tmp_path: Path) -> None:
    (workspace / "a.txt").write_text("hello\n")
    pb = write_playbook(tmp_path / "chat.json", TURNS)
    r = subprocess.run(
        [*LUMINAGUARD, "chat", "--workspace", str(workspace), "--playbook", str(pb)],
        input="what is here?\n\nnow write b.txt\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "There is a.txt." in r.stdout and "Wrote b.txt." in r.stdout
    # Nobody to ask on a pipe: the write (YELLOW) was put to the gate and denied.
    assert "denied by unattended" in r.stdout
    assert not (workspace / "b.txt").exists()
    [run] = json.loads(lg("audit", "list", "--json").stdout)
    records = journal(run["id"])
    kinds = [rec["type"] for rec in records]  # type: ignore[index]
    users = [rec["data"]["content"] for rec in records if rec["type"] == "user"]  # type: ignore[index]
    assert users == ["what is here?", "now write b.txt"]
    assert kinds.count("run_finished") == 1 and kinds[-1] == "run_finished"
    second = kinds.index("user", kinds.index("user") + 1)
    denied = [
        i for i, rec in enumerate(records)
        if rec["type"] == "decision" and not rec["data"]["approved"]  # type: ignore[index]
    ]  # fmt: skip
    assert denied and denied[0] > second  # the second turn's write, at the gate
    assert lg("audit", "verify", run["id"]).returncode == 0


def test_a_chat_on_a_terminal_prompts_and_asks_for_approval(
    workspace: Path, tmp_path: Path
) -> None:
    (workspace / "a.txt").write_text("hello\n")
    pb = write_playbook(tmp_path / "chat.json", TURNS)
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [*LUMINAGUARD, "chat", "--workspace", str(workspace), "--playbook", str(pb)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**os.environ, "TERM": "dumb"},
        start_new_session=True,
    )
    os.close(slave)
    seen = ""

    def until(text: str) -> None:
        nonlocal seen
        deadline = time.monotonic() + 60
        while text not in seen:
            assert time.monotonic() < deadline, f"never saw {text!r} in:\n{seen}"
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                seen += os.read(master, 65536).decode("utf-8", "replace")

    try:
        until("you›")
        os.write(master, b"what is here?\n")
        until("There is a.txt.")
        until("you›")
        os.write(master, b"now write b.txt\n")
        until("Approve?")  # the card for the write, asked at this terminal
        os.write(master, b"y\n")
        until("Wrote b.txt.")
        until("you›")
        os.write(master, b"\x04")  # Ctrl-D: the person is done
        until("■ finished")
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        os.close(master)
    assert (workspace / "b.txt").read_text() == "bee"
