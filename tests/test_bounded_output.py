"""Bounded output: a huge write gives a card and a journal of bounded size,
with a count and a hash of what was cut (the model's own turn keeps it whole)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from luminaguard.core.card import DiffCard
from luminaguard.core.effects import DIFF_LIMIT, unified_diff
from luminaguard.core.risk import Assessment, Risk
from luminaguard.core.text import bounded, cut
from luminaguard.ui.cards import SHOWN_DIFF_LINES, SHOWN_ITEMS, render_card_text
from tests.conftest import write_playbook
from tests.test_cli import lg


def test_a_huge_write_gives_a_bounded_card_and_journal(
    workspace: Path, tmp_path: Path, data_dir: Path
) -> None:
    content = "line of text\n" * 500_000  # 6.5 MB
    pb = write_playbook(
        tmp_path / "p.json",
        [
            {
                "tool_calls": [
                    {"name": "write_file", "arguments": {"path": "big.txt", "content": content}}
                ]
            },
            {"content": "done"},
        ],
    )
    r = lg(
        "run", "write", "--workspace", str(workspace), "--playbook", str(pb), "--approver", "none"
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(r.stdout) < 64 * 1024, f"{len(r.stdout):,} characters on the terminal"
    assert "more lines of this diff" in r.stdout
    [journal] = (data_dir / "runs").glob("*.jsonl")
    # The model's turn holds the content once; the card and the call's record are cut.
    assert journal.stat().st_size < len(json.dumps(content)) + 512 * 1024
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    call = next(r for r in records if r["type"] == "tool_call")["data"]
    digest = hashlib.sha256(content.encode()).hexdigest()
    assert digest in call["call"]["arguments"]["content"]
    assert f"{len(content):,} in all" in call["card"]["arguments"]["content"]
    assert len(json.dumps(call["card"])) < 4 * DIFF_LIMIT


def test_a_diff_is_cut_with_a_count_and_a_huge_one_is_not_computed() -> None:
    old = "".join(f"line {i}\n" for i in range(20_000))
    new = old.replace("0\n", "0 changed\n")
    diff = unified_diff(old, new, "f.txt", limit=2000)
    assert len(diff) < 2200 and "more characters of the diff cut" in diff
    huge = "x\n" * 5_000_000
    summary = unified_diff("", huge, "big.txt")
    assert "too large to diff: 0 → 10,000,000 characters" in summary
    assert len(summary) < DIFF_LIMIT + 500


def patched(old: str, diff: str) -> str:
    """``old`` with the hunks of a unified ``diff`` applied (every file ends in a newline here)."""
    import re

    a, out, pos = old.splitlines(keepends=True), [], 0
    for line in diff.splitlines(keepends=True)[2:]:
        hunk = re.match(r"@@ -(\d+)(?:,(\d+))? ", line)
        if hunk:
            start = int(hunk.group(1)) - (1 if int(hunk.group(2) or 1) else 0)
            out += a[pos:start]
            pos = start
        elif line[0] == " ":
            out.append(a[pos])
            pos += 1
        elif line[0] == "-":
            pos += 1
        else:
            out.append(line[1:])
    return "".join(out + a[pos:])


def test_a_long_file_with_changes_everywhere_is_diffed_exactly() -> None:
    """Long texts are diffed anchored on their unique lines: each diff, applied,
    gives the new text, repeated lines and all."""
    import random

    rng = random.Random(7)
    for _ in range(25):
        lines = [f"l{rng.randint(0, rng.choice([3, 40, 10_000]))}\n" for _ in range(5000)]
        new = list(lines)
        for _ in range(rng.randint(1, 400)):
            at = rng.randrange(len(new))
            roll = rng.random()
            if roll < 0.4:
                del new[at]
            elif roll < 0.7:
                new.insert(at, f"added {rng.randint(0, 50)}\n")
            else:
                new[at] = f"changed {rng.randint(0, 9)}\n"
        diff = unified_diff("".join(lines), "".join(new), "f.txt", limit=10**9)
        assert diff.startswith("--- a/f.txt\n+++ b/f.txt\n@@ ")
        assert patched("".join(lines), diff) == "".join(new)


def test_cut_and_bounded_keep_short_text_and_name_long_text_by_its_hash() -> None:
    assert cut("short", 10) == "short"
    text = "a" * 100
    out = cut(text, 10)
    assert out.startswith("a" * 10) and hashlib.sha256(text.encode()).hexdigest() in out
    assert bounded({"x": [text, 1], "y": "ok"}, 10) == {"x": [out, 1], "y": "ok"}


def test_a_terminal_card_shows_a_bounded_number_of_lines_and_paths() -> None:
    diff = "".join(f"+line {i}\n" for i in range(1000))
    deleted = [f"node_modules/f{i}" for i in range(1000)]
    card = DiffCard(
        tool="shell",
        arguments={"command": "x"},
        assessment=Assessment.of(Risk.ORANGE, "deletes", "deletes files"),
        kind="command",
        effects={
            "modified": [{"path": "a", "diff": diff}],
            "deleted": deleted,
            "created": [f"c{i}" for i in range(300)] + ["run.sh"],
            "executables": [{"path": "run.sh", "mode": 0o755}],
        },
    )
    shown = render_card_text(card, width=120)
    assert len(shown.splitlines()) < SHOWN_DIFF_LINES + 2 * SHOWN_ITEMS + 40
    assert f"{1000 - SHOWN_DIFF_LINES:,} more lines of this diff" in shown
    assert f"and {1000 - SHOWN_ITEMS:,} more deleted" in shown
    # 301 created: the first SHOWN_ITEMS and the executable are listed, the rest counted.
    assert f"and {301 - SHOWN_ITEMS - 1:,} more created" in shown, "created files vanish unsaid"
    assert "run.sh  (executable, mode 755)" in shown, "an executable past the cut is hidden"


def test_a_command_too_long_for_its_card_is_red() -> None:
    from luminaguard.messages import ToolCall
    from luminaguard.policy.gate import ARGUMENT_LIMIT, make_card
    from luminaguard.protocols import Prepared

    long = "echo " + "x" * (ARGUMENT_LIMIT + 10)
    static = Assessment.of(Risk.YELLOW, "runs", "runs a command")
    card = make_card(
        ToolCall("c", "shell", {"command": long}),
        static,
        Prepared(ToolCall("c", "shell", {"command": long}), "command"),
        {},
    )
    assert card.risk == Risk.RED
    assert any(r.rule == "too-long" for r in card.assessment.reasons)
    assert len(card.arguments["command"]) < ARGUMENT_LIMIT + 300
    short = make_card(
        ToolCall("c", "shell", {"command": "echo hi"}),
        static,
        Prepared(ToolCall("c", "shell", {"command": "echo hi"}), "command"),
        {},
    )
    assert short.risk == Risk.YELLOW
