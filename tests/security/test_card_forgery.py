"""A card cannot be forged: escape sequences in what a previewed command
prints (or in a file name) are shown, not obeyed, so the screen at the
prompt still shows the real card. Read through a real pty and a terminal
emulator (pyte), as a person would see it."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pyte

from luminaguard.core.card import DiffCard
from luminaguard.core.risk import Assessment, Risk
from luminaguard.core.text import inert
from luminaguard.ui.cards import render_card_text

# Clear the screen, go home, draw a reassuring fake card, hide the rest.
FAKE = r"\033[2J\033[H\033[32m GREEN  read-only, nothing changes\033[8m"
ATTACK = f"printf '{FAKE}'; rm -r src"


def screen_at_prompt(workspace: Path, playbook: Path, timeout_s: float = 60.0) -> str:
    """Run the agent in a pty until it asks; the screen as a terminal shows it."""
    screen = pyte.Screen(160, 60)
    stream = pyte.ByteStream(screen)
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "luminaguard", "run", "tidy up", "--playbook", str(playbook),
         "--workspace", str(workspace), "--approver", "prompt"],
        stdin=child, stdout=child, stderr=child, start_new_session=True,
        env={**os.environ, "TERM": "xterm", "COLUMNS": "160"},
    )  # fmt: skip
    os.close(child)
    seen = b""
    deadline = time.monotonic() + timeout_s
    try:
        while b"Approve?" not in seen:
            left = deadline - time.monotonic()
            assert left > 0, f"no prompt within {timeout_s} s: {seen[-2000:]!r}"
            ready, _, _ = select.select([main], [], [], left)
            if ready:
                chunk = os.read(main, 65536)
                assert chunk, f"the run ended before asking: {seen[-2000:]!r}"
                seen += chunk
                stream.feed(chunk)
        os.write(main, b"n\nnot this\n")
        proc.wait(timeout=timeout_s)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(main)
    return "\n".join(screen.display)


def test_escape_sequences_in_a_previews_output_cannot_replace_the_real_card(
    workspace: Path, tmp_path: Path
) -> None:
    (workspace / "src").mkdir()
    (workspace / "src" / "app.py").write_text("print('hi')\n")
    playbook = tmp_path / "attack.json"
    playbook.write_text(
        json.dumps(
            {
                "steps": [
                    {"tool_calls": [{"name": "shell", "arguments": {"command": ATTACK}}]},
                    {"content": "done"},
                ]
            }
        )
    )
    shown = screen_at_prompt(workspace, playbook)
    assert "ORANGE" in shown, shown
    assert "src/app.py" in shown, "the deletion is not on the screen"
    assert "\\x1b[2J" in shown, "the escape sequence should be shown as text"
    assert (workspace / "src" / "app.py").exists(), "denied, so nothing was deleted"


def test_a_rendered_card_holds_no_escape_sequence_but_its_own_colours() -> None:
    card = DiffCard(
        tool="shell",
        arguments={"command": "ls\x1b]0;title\x07"},
        assessment=Assessment.of(Risk.ORANGE, "changes-files", "rm a\x1b[2Jb"),
        kind="command",
        effects={
            "created": ["evil\nname\x1b[1A.txt"],
            "stdout": "\x1b[2J\x1b[Hfake\r\u202ereversed",
            "exit_code": 0,
        },
    )
    plain = render_card_text(card, color=False)
    assert "\x1b" not in plain and "\r" not in plain and "\u202e" not in plain
    assert "evil\\nname\\x1b[1A.txt" in plain
    coloured = render_card_text(card, color=True)
    import re

    foreign = re.sub(r"\x1b\[[0-9;]*m", "", coloured)
    assert "\x1b" not in foreign, "only the card's own colour codes may reach the terminal"


def test_inert_shows_every_control_character_and_keeps_plain_text() -> None:
    assert inert("plain text\twith tab\nand lines") == "plain text\twith tab\nand lines"
    assert inert("a\x1b[31mb\x07c\x9bd") == "a\\x1b[31mb\\x07c\\x9bd"
    assert inert("name\nwith newline", newlines=False) == "name\\nwith newline"
    assert inert("\u202egnp.exe") == "\\u202egnp.exe"
