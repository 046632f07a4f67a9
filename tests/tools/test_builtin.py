from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from luminaguard.config import SandboxSettings
from luminaguard.core.risk import Risk
from luminaguard.errors import ToolArgumentError, ToolError
from luminaguard.messages import ToolCall, ToolResult
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


def test_shell_runs_in_the_sandbox(tools: BuiltinTools) -> None:
    r = call(tools, "shell", command="id -u; ls; exit 3")
    assert r.is_error and r.data["exit_code"] == 3
    assert "1000" in r.output and "notes.md" in r.output


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


def test_the_direct_path_for_green_commands_cannot_write(
    tools: BuiltinTools, workspace: Path
) -> None:
    # Defence in depth: even a writing command that reached the GREEN path
    # (a classifier mistake) finds the workspace read-only.
    r = call(tools, "shell", command="echo x > sneaky.txt; rm notes.md")
    assert r.is_error
    assert "Read-only file system" in r.output
    assert not (workspace / "sneaky.txt").exists() and (workspace / "notes.md").exists()


def test_prepare_previews_a_shell_command_and_apply_commits_it(
    tools: BuiltinTools, workspace: Path
) -> None:
    prepared = asyncio.run(
        tools.prepare(ToolCall("c", "shell", {"command": "echo hi > made.txt; rm notes.md"}))
    )
    assert prepared.kind == "command"
    assert prepared.effects is not None and prepared.effects["created"] == ["made.txt"]
    assert prepared.effect_assessment is not None and prepared.effect_assessment.risk == Risk.ORANGE
    assert not (workspace / "made.txt").exists()
    result = asyncio.run(tools.apply(prepared))
    assert (workspace / "made.txt").read_text() == "hi\n" and not (workspace / "notes.md").exists()
    assert result.data["changes"]["deleted"] == ["notes.md"]


def test_prepare_of_a_write_shows_the_diff(tools: BuiltinTools) -> None:
    prepared = asyncio.run(
        tools.prepare(
            ToolCall("c", "write_file", {"path": "notes.md", "content": "DONE: hello again\n"})
        )
    )
    assert prepared.kind == "edit"
    diff = prepared.effects["modified"][0]["diff"]  # type: ignore[index]
    assert "-TODO: hello again" in diff and "+DONE: hello again" in diff


def test_a_prepared_call_is_data_that_another_tool_source_can_carry_out(
    tools: BuiltinTools, workspace: Path
) -> None:
    import json

    from luminaguard.protocols import Prepared

    prepared = asyncio.run(
        tools.prepare(ToolCall("c", "shell", {"command": "echo hi > made.txt; rm notes.md"}))
    )
    sent = json.loads(json.dumps(prepared.to_dict()))
    elsewhere = BuiltinTools(BwrapSandbox(workspace, SandboxSettings(timeout_s=30)))
    received = Prepared.from_dict(sent)
    assert received == prepared
    result = asyncio.run(elsewhere.apply(received))
    assert (workspace / "made.txt").read_text() == "hi\n" and not (workspace / "notes.md").exists()
    assert result.data["changes"]["created"] == ["made.txt"]
