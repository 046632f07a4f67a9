from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from luminaguard.core.risk import Risk
from luminaguard.policy.classify import classify_action, classify_mcp
from luminaguard.policy.shell import classify_shell
from luminaguard.sandbox.workspace import Workspace
from tests.policy.corpus import BENIGN_SHELL, BENIGN_TOOLS, RISKY, make_workspace


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace(make_workspace(tmp_path_factory.mktemp("corpus")))


def test_the_corpus_is_large_enough() -> None:
    assert len(BENIGN_SHELL) + len(BENIGN_TOOLS) + len(RISKY) >= 200
    assert {level for _, _, level in RISKY} == {Risk.YELLOW, Risk.ORANGE, Risk.RED}


@pytest.mark.parametrize(
    ("tool", "args", "least"), RISKY, ids=[f"{t}:{a}"[:80] for t, a, _ in RISKY]
)
def test_every_risky_action_is_at_or_above_its_level(
    ws: Workspace, tool: str, args: dict[str, Any], least: Risk
) -> None:
    a = classify_action(tool, args, ws=ws)
    assert a.risk >= least, (
        f"{tool} {args} classified {a.risk.label}: {[str(r) for r in a.reasons]}"
    )
    assert a.reasons


def test_at_least_95_percent_of_benign_reads_are_green(ws: Workspace) -> None:
    actions = [("shell", {"command": c}) for c in BENIGN_SHELL] + BENIGN_TOOLS
    not_green = []
    for tool, args in actions:
        a = classify_action(tool, args, ws=ws)
        if a.risk != Risk.GREEN:
            not_green.append((args, a.risk.label, [str(r) for r in a.reasons]))
    share = 1 - len(not_green) / len(actions)
    assert share >= 0.95, not_green


def test_no_benign_read_is_red(ws: Workspace) -> None:
    for command in BENIGN_SHELL:
        assert classify_shell(command, ws.root and ws).risk < Risk.RED, command


def test_a_symlink_in_the_workspace_that_points_out_is_outside(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "etc").symlink_to("/etc")
    ws = Workspace(root)
    assert classify_shell("cat etc/passwd", ws).risk == Risk.RED
    assert classify_action("read_file", {"path": "etc/hostname"}, ws=ws).risk == Risk.RED


@pytest.mark.parametrize(
    ("annotations", "trusted", "risk"),
    [
        ({"readOnlyHint": True, "openWorldHint": False}, True, Risk.GREEN),
        ({"readOnlyHint": True, "openWorldHint": False}, False, Risk.RED),
        ({"readOnlyHint": True}, True, Risk.RED),
        (
            {"readOnlyHint": False, "destructiveHint": False, "openWorldHint": False},
            True,
            Risk.YELLOW,
        ),
        ({"destructiveHint": True, "openWorldHint": False}, True, Risk.ORANGE),
        ({}, True, Risk.RED),
        (None, True, Risk.RED),
    ],
)
def test_mcp_annotations_count_only_for_trusted_servers(
    annotations: dict[str, Any] | None, trusted: bool, risk: Risk
) -> None:
    a = classify_action("mcp:srv/tool", {}, ws=None, annotations=annotations, trusted=trusted)
    assert a.risk == risk


def test_open_world_reads_take_the_level_the_policy_sets() -> None:
    a = classify_mcp(
        "mcp:web/search", {"readOnlyHint": True, "openWorldHint": True}, open_world_read=Risk.YELLOW
    )
    assert a.risk == Risk.YELLOW


# --- properties -------------------------------------------------------------

SIMPLE = st.sampled_from(
    [
        "ls", "cat README.md", "grep -r x src", "echo hi", "rm out.txt", "mkdir build", "curl http://x",
        "git status", "git push", "sed -i s/a/b/ README.md", "echo x > new.txt", "python3 -c 'print(1)'",
        "sudo ls", "wc -l src/app.py", "find . -name '*.py'", "make", "cat /etc/passwd", "true",
    ]
)  # fmt: skip
JOINERS = st.sampled_from([" | ", " && ", " || ", "; ", "\n"])


@settings(max_examples=150, deadline=None)
@given(first=SIMPLE, second=SIMPLE, joiner=JOINERS, before=st.booleans())
def test_adding_a_command_never_lowers_the_level(
    ws: Workspace, first: str, second: str, joiner: str, before: bool
) -> None:
    alone = classify_shell(first, ws).risk
    combined = f"{second}{joiner}{first}" if before else f"{first}{joiner}{second}"
    assert classify_shell(combined, ws).risk >= alone


@settings(max_examples=100, deadline=None)
@given(
    first=SIMPLE,
    wrap=st.sampled_from(["( {} )", "{{ {}; }}", "echo $({})", "if true; then {}; fi", "x=$({})"]),
)
def test_nesting_a_command_never_lowers_the_level(ws: Workspace, first: str, wrap: str) -> None:
    assert classify_shell(wrap.format(first), ws).risk >= classify_shell(first, ws).risk


def requote(command: str, style: int, spaces: int) -> str:
    words = command.split(" ")
    out = []
    for w in words:
        plain = all(ch.isalnum() or ch in "-._/" for ch in w) and w
        if plain and style == 1:
            w = f"'{w}'"
        elif plain and style == 2:
            w = f'"{w}"'
        elif plain and style == 3 and len(w) > 1:
            w = f"{w[0]}'{w[1:]}'"
        out.append(w)
    return (" " * spaces).join(out) + " " * (spaces - 1)


@settings(max_examples=200, deadline=None)
@given(command=SIMPLE, style=st.integers(0, 3), spaces=st.integers(1, 4))
def test_quoting_and_whitespace_never_lower_the_level(
    ws: Workspace, command: str, style: int, spaces: int
) -> None:
    variant = requote(command, style, spaces)
    assert classify_shell(variant, ws).risk >= classify_shell(command, ws).risk, variant


def test_a_command_too_complex_to_walk_is_red_not_a_crash() -> None:
    for command in (
        " && ".join(["ls"] * 2000),
        "echo " + "$(" * 300 + "ls" + ")" * 300,
        "eval " + repr(" && ".join(["ls"] * 2000)),
    ):
        a = classify_shell(command)
        assert a.risk == Risk.RED and a.reasons[0].rule == "too-complex", a
    assert classify_shell(" && ".join(["ls"] * 40)).risk == Risk.GREEN
