from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from luminaguard.config import SandboxSettings
from luminaguard.errors import ToolArgumentError, ToolError
from luminaguard.messages import ToolCall, ToolResult
from luminaguard.policy.risk import Risk
from luminaguard.sandbox.bwrap import BwrapSandbox
from luminaguard.tools.builtin import BuiltinTools


@pytest.fixture
def tools(workspace: Path) -> BuiltinTools:
    (workspace / "src").mkdir()
    (workspace / "src" / "app.py").write_text("def main():\n    return 'hello world'\n")
    (workspace / "notes.md").write_text("TODO: hello again\n")
    (workspace / "blob.bin").write_bytes(b"\x00\x01hello")
    return BuiltinTools(BwrapSandbox(workspace, SandboxSettings(timeout_s=30)))


def call(tools: BuiltinTools, name: str, **args: Any) -> ToolResult:
    return asyncio.run(tools.call(ToolCall("c1", name, args)))


def test_the_six_tools_are_offered_with_schemas_from_their_signatures(tools: BuiltinTools) -> None:
    specs = {s.name: s for s in tools.specs()}
    assert set(specs) == {"read_file", "list_dir", "search", "write_file", "delete_file", "shell"}
    write = specs["write_file"].parameters
    assert write["required"] == ["path", "content"]
    assert write["properties"]["path"]["type"] == "string"
    assert "description" in write["properties"]["path"]
    assert specs["shell"].description.startswith("Run a bash command")
    assert specs["list_dir"].parameters.get("required", []) == []


def test_read_file_and_list_dir(tools: BuiltinTools) -> None:
    assert "hello world" in call(tools, "read_file", path="src/app.py").output
    listing = call(tools, "list_dir").output.splitlines()
    assert "src/" in listing
    assert any(line.startswith("notes.md") for line in listing)
    assert "binary file" in call(tools, "read_file", path="blob.bin").output


def test_search_finds_text_and_skips_binaries(tools: BuiltinTools) -> None:
    out = call(tools, "search", pattern="hello").output.splitlines()
    assert out == ["notes.md:1: TODO: hello again", "src/app.py:2:     return 'hello world'"]
    assert call(tools, "search", pattern="hel+o", regex=True, glob="*.py").output.startswith(
        "src/app.py:2:"
    )
    assert call(tools, "search", pattern="absent").output == "no matches"
    with pytest.raises(ToolArgumentError, match="regular expression"):
        call(tools, "search", pattern="(", regex=True)


def test_write_and_delete_report_what_they_changed(tools: BuiltinTools, workspace: Path) -> None:
    created = call(tools, "write_file", path="out/new.txt", content="n")
    assert created.data["changes"]["created"] == ["out/new.txt"]
    modified = call(tools, "write_file", path="notes.md", content="changed")
    assert modified.data["changes"]["modified"] == ["notes.md"]
    deleted = call(tools, "delete_file", path="notes.md")
    assert deleted.data["changes"]["deleted"] == ["notes.md"]
    assert not (workspace / "notes.md").exists()


def test_shell_runs_in_the_sandbox_and_reports_changes(tools: BuiltinTools) -> None:
    r = call(tools, "shell", command="rm notes.md; echo hi > made.txt; echo out; exit 3")
    assert r.is_error and r.data["exit_code"] == 3
    assert "out" in r.output
    assert r.data["changes"]["created"] == ["made.txt"]
    assert r.data["changes"]["deleted"] == ["notes.md"]


def test_paths_outside_the_workspace_are_refused(tools: BuiltinTools) -> None:
    with pytest.raises(ToolError, match="outside the workspace"):
        call(tools, "read_file", path="../../etc/passwd")


@pytest.mark.parametrize(
    ("name", "args", "risk"),
    [
        ("read_file", {"path": "notes.md"}, Risk.GREEN),
        ("list_dir", {}, Risk.GREEN),
        ("search", {"pattern": "x"}, Risk.GREEN),
        ("write_file", {"path": "fresh.txt", "content": ""}, Risk.YELLOW),
        ("write_file", {"path": "notes.md", "content": ""}, Risk.ORANGE),
        ("delete_file", {"path": "notes.md"}, Risk.ORANGE),
        ("shell", {"command": "ls"}, Risk.GREEN),
        ("shell", {"command": "rm notes.md"}, Risk.ORANGE),
        ("read_file", {"path": "/etc/shadow"}, Risk.RED),
        ("write_file", {"path": "../x", "content": ""}, Risk.RED),
        ("mystery", {}, Risk.RED),
    ],
)
def test_the_first_risk_table(
    tools: BuiltinTools, name: str, args: dict[str, Any], risk: Risk
) -> None:
    assessment = tools.assess(ToolCall("c", name, args))
    assert assessment.risk == risk
    assert assessment.reasons


def test_the_preview_of_a_write_is_a_unified_diff(tools: BuiltinTools) -> None:
    preview = tools.preview(
        ToolCall("c", "write_file", {"path": "notes.md", "content": "DONE: hello again\n"})
    )
    assert preview.splitlines()[:3] == ["modify notes.md", "--- a/notes.md", "+++ b/notes.md"]
    assert "-TODO: hello again" in preview and "+DONE: hello again" in preview
