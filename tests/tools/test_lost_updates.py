"""Nothing lost: a change made to the workspace while a card is open (by the
person, or another run) is never overwritten by approving the card; the
conflict baseline is the workspace as it was when the preview started."""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from luminaguard.config import SandboxSettings
from luminaguard.errors import CommitConflict, ToolError
from luminaguard.messages import ToolCall
from luminaguard.sandbox.bwrap import BwrapSandbox
from luminaguard.tools.builtin import BuiltinTools


@pytest.fixture
def tools(workspace: Path) -> BuiltinTools:
    (workspace / "notes.md").write_text("mine\n")
    return BuiltinTools(BwrapSandbox(workspace, SandboxSettings(timeout_s=30, pool_size=0)))


@pytest.mark.parametrize(
    "call",
    [
        ToolCall("c", "write_file", {"path": "notes.md", "content": "theirs\n"}),
        ToolCall("c", "delete_file", {"path": "notes.md"}),
    ],
)
def test_an_edit_made_while_the_card_is_open_is_not_overwritten(
    tools: BuiltinTools, workspace: Path, call: ToolCall
) -> None:
    prepared = asyncio.run(tools.prepare(call))
    (workspace / "notes.md").write_text("mine, edited while the card was open\n")
    with pytest.raises(ToolError, match=r"notes\.md"):
        asyncio.run(tools.apply(prepared))
    assert (workspace / "notes.md").read_text() == "mine, edited while the card was open\n"


def test_a_file_created_while_the_card_is_open_is_not_overwritten(
    tools: BuiltinTools, workspace: Path
) -> None:
    prepared = asyncio.run(
        tools.prepare(ToolCall("c", "write_file", {"path": "new.md", "content": "agent\n"}))
    )
    (workspace / "new.md").write_text("person\n")
    with pytest.raises(ToolError):
        asyncio.run(tools.apply(prepared))
    assert (workspace / "new.md").read_text() == "person\n"


def newest_layer(since: float) -> Path | None:
    layers = [
        p
        for p in Path(tempfile.gettempdir()).glob("lg-preview-*")
        if p.stat().st_mtime >= since and (p / "upper" / "notes.md").exists()
    ]
    return max(layers, key=lambda p: p.stat().st_mtime) if layers else None


def test_a_change_committed_by_another_run_during_a_preview_is_a_conflict(
    workspace: Path,
) -> None:
    (workspace / "notes.md").write_text("line 1\n")
    sandbox = BwrapSandbox(workspace, SandboxSettings(timeout_s=30, pool_size=0))

    async def scenario() -> None:
        started = time.time() - 1
        preview = asyncio.create_task(
            sandbox.preview(["/bin/sh", "-c", "echo from-A >> notes.md; sleep 3"])
        )
        # Once A's command has copied the file up (its change is under way)...
        deadline = time.monotonic() + 20
        while newest_layer(started) is None:
            assert time.monotonic() < deadline, "the preview never wrote"
            await asyncio.sleep(0.02)
        # ...another process (run B) changes the same file on the real workspace.
        subprocess.run(["sh", "-c", "echo from-B >> notes.md"], cwd=workspace, check=True)
        p = await preview
        with pytest.raises(CommitConflict, match=r"notes\.md"):
            sandbox.commit(p.handle)
        sandbox.discard(p.handle)

    asyncio.run(scenario())
    assert (workspace / "notes.md").read_text() == "line 1\nfrom-B\n", "B's line was lost"
