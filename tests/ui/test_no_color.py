"""NO_COLOR is honoured: a card on a real terminal (a pty) has colour unless
NO_COLOR is set or TERM is dumb; a pipe never has it."""

from __future__ import annotations

import os

import pytest

from luminaguard.core.card import DiffCard
from luminaguard.core.risk import Assessment, Risk
from luminaguard.messages import ToolCall
from luminaguard.protocols import Decision
from luminaguard.ui.terminal import TerminalReport

CARD = DiffCard(
    tool="shell",
    arguments={"command": "rm x"},
    assessment=Assessment.of(Risk.RED, "deletes", "deletes files"),
    kind="command",
    effects={"deleted": ["x"]},
)


def shown(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> str:
    for name in ("NO_COLOR", "TERM"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    master, slave = os.openpty()
    with open(slave, "w", encoding="utf-8", closefd=True) as tty:
        report = TerminalReport(tty)
        report(
            "decision",
            {
                "call": ToolCall("c", "shell", {"command": "rm x"}),
                "decision": Decision(True, "policy", "ok"),
                "card": CARD,
            },
        )
    data = os.read(master, 65536).decode()
    os.close(master)
    return data


def test_a_card_on_a_terminal_is_coloured_unless_no_color_says_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert "\x1b[" in shown(monkeypatch, {"TERM": "xterm-256color"})
    assert "\x1b[" not in shown(monkeypatch, {"TERM": "xterm-256color", "NO_COLOR": "1"})
    assert "\x1b[" not in shown(monkeypatch, {"TERM": "dumb"})
