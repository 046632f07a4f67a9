"""The Textual approval inbox, driven with Textual's pilot."""

from __future__ import annotations

import asyncio
from pathlib import Path

from luminaguard.core.card import DiffCard
from luminaguard.core.risk import Assessment, Risk
from luminaguard.policy.inbox import InboxStore
from luminaguard.ui.cards import render_card_text
from luminaguard.ui.inbox_app import InboxApp

LONG_DIFF = "--- a/app.py\n+++ b/app.py\n@@ -1,40 +1,40 @@\n" + "".join(
    f"-old line {i}\n+new line {i}\n" for i in range(40)
)


def cards(store: InboxStore) -> tuple[int, int]:
    a = store.put(
        DiffCard(
            "write_file",
            {"path": "app.py", "content": "..."},
            Assessment.of(Risk.ORANGE, "overwrite", "write_file replaces existing app.py"),
            "edit",
            {"modified": [{"path": "app.py", "diff": LONG_DIFF}]},
            context={"agent": "agent-1", "task": "refactor the app", "run_id": "r1", "step": 2},
        )
    )
    b = store.put(
        DiffCard(
            "shell",
            {"command": "curl https://example.com"},
            Assessment.of(Risk.RED, "network", "curl talks to the network"),
            "command",
            {
                "network": [
                    {"host": "example.com", "port": 443, "method": "CONNECT", "blocked": True}
                ],
                "exit_code": 7,
            },
            context={"agent": "agent-2", "task": "fetch the docs", "run_id": "r2", "step": 1},
        )
    )
    return a, b


def test_the_inbox_shows_two_agents_oldest_first_and_decides(tmp_path: Path) -> None:
    store = InboxStore(tmp_path / "inbox.db")
    first, second = cards(store)

    async def scenario() -> None:
        app = InboxApp(store, "alice", refresh_s=0.05)
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.pause()
            assert [i.id for i in app.items] == [first, second]
            status = app.status_text()
            assert (
                "🟠 ORANGE" in status
                and "Edit · write_file" in status
                and "refactor the app" in status
            )
            assert "[" in status and "/" in status  # scroll position like [27/87]
            before = app.query_one("#card").scroll_y
            await pilot.press("pagedown")
            await pilot.pause()
            assert app.query_one("#card").scroll_y > before
            await pilot.press("n")
            assert "🔴 RED" in app.status_text() and "fetch the docs" in app.status_text()
            await pilot.press("p")
            await pilot.press("a")
            await pilot.pause()
            assert [i.id for i in app.items] == [second]
            await pilot.press("d")
            await pilot.press(*"not now")
            await pilot.press("enter")
            await pilot.pause()
            assert app.items == []

    asyncio.run(scenario())
    assert store.get(first).status == "approved" and store.get(first).decided_by == "alice"  # type: ignore[union-attr]
    denied = store.get(second)
    assert denied is not None and denied.status == "denied" and denied.reason == "not now"


def test_approve_with_a_grant_and_a_whole_step(tmp_path: Path) -> None:
    store = InboxStore(tmp_path / "inbox.db")
    first, second = cards(store)
    third = store.put(
        DiffCard(
            "shell",
            {"command": "make"},
            Assessment.of(Risk.ORANGE, "x", "y"),
            "command",
            {},
            context={"agent": "agent-1", "task": "t", "run_id": "r1", "step": 2},
        )
    )

    async def scenario() -> None:
        app = InboxApp(store, "alice", refresh_s=0.05)
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.pause()
            await pilot.press("s")  # first and third share run r1, step 2
            await pilot.pause()
            assert [i.id for i in app.items] == [second]
            await pilot.press("g")
            await pilot.pause()

    asyncio.run(scenario())
    assert store.get(first).status == store.get(third).status == "approved"  # type: ignore[union-attr]
    assert store.get(second).grant_hours == 8.0  # type: ignore[union-attr]


def test_a_card_as_text_colours_its_level_and_labels_changes() -> None:
    c = DiffCard(
        "shell",
        {"command": "rm a; echo n > b"},
        Assessment.of(Risk.ORANGE, "changes-files", "rm removes files"),
        "command",
        {
            "created": ["b"],
            "deleted": ["a"],
            "modified": [],
            "exit_code": 0,
            "stdout": "",
            "stderr": "",
        },
    )
    text = render_card_text(c, width=80)
    assert "🟠 ORANGE" in text and "Command · shell" in text
    assert "Create  b" in text and "Delete  a" in text and "$ rm a; echo n > b" in text
    colored = render_card_text(c, color=True, width=80)
    assert "\x1b[" in colored
