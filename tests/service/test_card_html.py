"""The web inbox's card: the same parts as the terminal's, every line of a
diff shown (unified and side by side), and nothing from the card becoming
markup: the only tags, classes and styles are the renderer's own."""

from __future__ import annotations

import html.parser
import re

import pytest

from luminaguard.core.card import DiffCard
from luminaguard.core.effects import unified_diff
from luminaguard.core.risk import Assessment, Risk
from luminaguard.service.card_html import MODES, card_html, diff_html
from luminaguard.ui.cards import render_card_text

HOSTILE = "</td></tr></table><script>alert(1)</script><b onmouseover='x'>\x1b[31mred"
OLD = "def f(x):\n    return x\n" + "".join(f"line {i}\n" for i in range(30)) + "# the end\n"
NEW = (
    "def f(x):\n    return x + 1  # " + HOSTILE + "\n"
    + "".join(f"line {i}\n" for i in range(30) if i != 7)
    + "# the end\n-- a line that starts like a header\nprint('no newline')"
)  # fmt: skip


class Markup(html.parser.HTMLParser):
    """Every tag and attribute of a fragment, and its text cell by cell."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.cells: list[str] = [""]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in ("td", "tr", "pre"):
            self.cells.append("")

    def handle_data(self, data: str) -> None:
        self.cells[-1] += data


def parsed(fragment: str) -> Markup:
    m = Markup()
    m.feed(fragment)
    m.close()
    return m


OURS = {"table", "colgroup", "col", "tr", "td", "span", "pre"}
CLASSES = {
    "diff",
    "diff split",
    "nocol",
    "no",
    "add",
    "del",
    "hunk",
    "file",
    "note",
    "gap",
    "cardtext",
} | set("csnkbf")
STYLE = re.compile(r"^((font-weight:bold|opacity:\.7|color:#[0-9a-f]{6});?)*$")


def assert_only_ours(m: Markup) -> None:
    for tag, attrs in m.tags:
        assert tag in OURS, tag
        assert set(attrs) <= {"class", "colspan", "style"}, attrs
        if "class" in attrs:
            assert attrs["class"] in CLASSES, attrs
        if "style" in attrs:
            assert STYLE.match(attrs["style"] or ""), attrs


@pytest.mark.parametrize("mode", MODES)
def test_every_line_of_a_diff_is_shown_and_none_is_markup(mode: str) -> None:
    diff = unified_diff(OLD, NEW, f"src/{HOSTILE}.py")
    m = parsed(diff_html(diff, mode=mode))
    assert_only_ours(m)
    cells = [c for c in m.cells if c]
    for line in diff.splitlines():
        if line.startswith(("+", "-", " ")) and not line.startswith(("+++ ", "--- ")):
            assert line in cells, line  # the sign and the code, in one cell
        else:
            assert line in cells, line  # a header, a hunk, a note: whole
    # The file's type colours its code: `return` is a keyword, in its own span.
    assert ("span", {"class": "k"}) in m.tags
    # Line numbers are each side's own: the new side's last line is 33.
    assert "33" in cells


def test_side_by_side_pairs_removed_with_added_lines() -> None:
    diff = unified_diff("a\nb\nc\n", "a\nB\nc\nd\n", "x.txt")
    m = parsed(diff_html(diff, mode="split"))
    cells = [c for c in m.cells if c]
    # One row: old 2 "-b" beside new 2 "+B"; then a row with only the new side.
    assert cells[cells.index("-b") :][:3] == ["-b", "2", "+B"]
    assert cells[cells.index("+d") - 1] == "4"


def test_a_header_like_line_inside_a_hunk_is_code() -> None:
    diff = unified_diff("x\n", "x\n-- y\n", "a.sql")
    m = parsed(diff_html(diff))
    # "+-- y" is an added line (counted by the hunk), not a file header.
    rows = [attrs.get("class") for tag, attrs in m.tags if tag == "tr"]
    assert rows.count("file") == 2 and rows[-1] == "add"


def test_the_web_card_shows_every_line_of_the_terminal_card() -> None:
    card = DiffCard(
        tool="shell",
        arguments={"command": f"python gen.py {HOSTILE}"},
        assessment=Assessment.of(Risk.RED, "network", "talks to a host <i>x</i>"),
        kind="command",
        effects={
            "rerun": True,
            "created": ["run.sh", f"{HOSTILE}.txt"],
            "executables": [{"path": "run.sh", "mode": 0o755}],
            "modified": [{"path": "a.py", "diff": unified_diff(OLD, NEW, "a.py")}],
            "deleted": ["old.txt"],
            "symlinks": [{"path": "l", "target": "/etc/passwd", "outside": True}],
            "network": [{"host": "example.com", "port": 443, "blocked": True}],
            "exit_code": 3,
            "stdout": f"out {HOSTILE}\n",
        },
    )
    m = parsed(card_html(card))
    assert_only_ours(m)
    text = "\n".join(m.cells)
    terminal = render_card_text(card, width=400)
    for line in terminal.splitlines():
        line = line.strip("│╭╮╰╯─ ").strip()
        if line and "🔴" not in line:  # the panel's title is the page's heading
            assert line in text, line
