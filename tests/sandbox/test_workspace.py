from __future__ import annotations

import os
from pathlib import Path

import pytest

from luminaguard.errors import ToolError, WorkspacePathError
from luminaguard.sandbox.workspace import Workspace


@pytest.fixture
def ws(workspace: Path) -> Workspace:
    (workspace / "sub").mkdir()
    (workspace / "sub" / "f.txt").write_text("inside")
    return Workspace(workspace)


@pytest.mark.parametrize(
    "path", ["../x", "sub/../../x", "/etc/passwd", "/workspace/../etc/passwd", ""]
)
def test_paths_that_climb_out_are_refused(ws: Workspace, path: str) -> None:
    with pytest.raises(WorkspacePathError):
        ws.resolve(path)


def test_sandbox_style_absolute_paths_map_to_the_workspace(ws: Workspace) -> None:
    assert ws.read_file("/workspace/sub/f.txt") == b"inside"
    assert ws.read_file("./sub/../sub/f.txt") == b"inside"


def test_a_symlink_out_of_the_workspace_is_not_followed_for_reads_or_writes(
    ws: Workspace, tmp_path: Path
) -> None:
    outside = tmp_path / "outside-secret"
    outside.write_text("secret")
    os.symlink(outside, ws.root / "link")
    os.symlink(tmp_path, ws.root / "dirlink")
    with pytest.raises(WorkspacePathError):
        ws.read_file("link")
    with pytest.raises(WorkspacePathError):
        ws.write_file("link", b"overwritten")
    with pytest.raises(WorkspacePathError):
        ws.write_file("dirlink/new", b"x")
    assert outside.read_text() == "secret"
    assert not (tmp_path / "new").exists()


def test_deleting_a_symlink_removes_the_link_not_its_target(ws: Workspace, tmp_path: Path) -> None:
    outside = tmp_path / "target"
    outside.write_text("keep me")
    os.symlink(outside, ws.root / "link")
    ws.delete_file("link")
    assert not (ws.root / "link").is_symlink()
    assert outside.read_text() == "keep me"


def test_writes_create_parent_directories_inside(ws: Workspace) -> None:
    ws.write_file("a/b/c.txt", b"deep")
    assert (ws.root / "a" / "b" / "c.txt").read_bytes() == b"deep"


def test_the_workspace_itself_cannot_be_deleted_or_overwritten(ws: Workspace) -> None:
    with pytest.raises(ToolError):
        ws.delete_file(".")
    with pytest.raises(ToolError):
        ws.write_file("/workspace", b"x")


def test_errors_are_tool_errors_with_the_path(ws: Workspace) -> None:
    with pytest.raises(ToolError, match=r"nope\.txt: no such file"):
        ws.read_file("nope.txt")
    with pytest.raises(ToolError, match="is a directory"):
        ws.read_file("sub")
    with pytest.raises(ToolError, match="removes files only"):
        ws.delete_file("sub")
