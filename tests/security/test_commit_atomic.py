"""A card is complete and a commit atomic: a directory replaced by a file or a
link lists everything removed under it, a link target is normalised before it
is judged, and a commit either applies every change or none."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from luminaguard.config import SandboxSettings
from luminaguard.core.paths import points_outside
from luminaguard.errors import SandboxError
from luminaguard.sandbox.bwrap import BwrapSandbox
from luminaguard.sandbox.workspace import Workspace
from tests.conftest import missing
from tests.sandbox.test_preview import preview, tree


@pytest.fixture
def ws(workspace: Path) -> Path:
    for rel in ("dir/a/b/deep.txt", "dir/top.txt", "other/x/y.txt", "keep.txt", "b.txt"):
        (workspace / rel).parent.mkdir(parents=True, exist_ok=True)
        (workspace / rel).write_text(f"{rel}\n")
    (workspace / "other" / "link").symlink_to("x")
    return workspace


@pytest.mark.parametrize(
    "script",
    [
        "rm -rf dir && echo now-a-file > dir",
        "rm -rf dir && ln -s keep.txt dir",
        "rm -rf dir",
        "rm -rf dir other && echo f > other",
    ],
)
def test_a_replaced_directory_lists_everything_under_it_and_commits_like_the_real_run(
    ws: Path, tmp_path: Path, script: str
) -> None:
    reference = tmp_path / "reference"
    shutil.copytree(ws, reference, symlinks=True)
    asyncio.run(
        BwrapSandbox(reference, SandboxSettings(pool_size=0)).exec(["/bin/bash", "-c", script])
    )
    p = preview(ws, script)
    deleted = set(p.effects.deleted)
    for rel in ("dir", "dir/a", "dir/a/b", "dir/a/b/deep.txt", "dir/top.txt"):
        assert rel in deleted, f"{rel} is removed but not on the card: {sorted(deleted)}"
    if "other" in script:
        assert {"other/x", "other/x/y.txt", "other/link"} <= deleted
    p.commit()
    assert tree(ws) == tree(reference)


def test_a_commit_that_fails_part_way_applies_nothing(ws: Path) -> None:
    p = preview(ws, "rm b.txt; rm -rf dir; echo more >> keep.txt; echo new > c.txt; mkdir n")
    # Something new appears in the directory the command removed (an editor's
    # swap file, say): its removal fails after others were already made.
    (ws / "dir" / "new.swp").write_text("theirs\n")
    before = tree(ws)
    with pytest.raises(SandboxError, match="nothing of it was applied"):
        p.commit()
    assert tree(ws) == before
    assert not [n for n in os.listdir(ws) if n.startswith(".luminaguard-")], "staging left behind"


def test_every_kind_of_change_is_undone_when_a_transaction_fails(ws: Path) -> None:
    os.chmod(ws / "keep.txt", 0o640)
    before = tree(ws)
    w = Workspace(ws)
    with pytest.raises(RuntimeError, match="stop"), w.transaction() as t:
        t.remove("dir/a/b/deep.txt")
        t.remove("dir/a/b")
        t.remove("other/link")
        t.make_dir("made", 0o750)
        t.write("made/new.txt", b"new\n", 0o755)
        t.write("keep.txt", b"replaced\n")
        t.symlink("b.txt", "keep.txt")
        t.symlink("alias", "keep.txt")
        t.chmod("dir/top.txt", 0o600)
        raise RuntimeError("stop")
    assert tree(ws) == before
    assert not [n for n in os.listdir(ws) if n.startswith(".luminaguard-")]


def test_a_replaced_file_keeps_its_mode_and_is_replaced_whole(ws: Path) -> None:
    os.chmod(ws / "keep.txt", 0o600)
    other_name = ws / "hardlink.txt"
    os.link(ws / "keep.txt", other_name)
    Workspace(ws).write_file("keep.txt", b"new\n")
    assert (ws / "keep.txt").read_text() == "new\n"
    assert oct((ws / "keep.txt").stat().st_mode & 0o777) == "0o600"
    # A new file is renamed into place: a hard link to the old one is not written through.
    assert other_name.read_text() == "keep.txt\n"


def test_a_replaced_file_keeps_its_owner(ws: Path) -> None:
    if os.geteuid() != 0:
        missing("only root can give a file away (these machines and CI run as root)")
    os.chown(ws / "keep.txt", 1234, 2345)
    Workspace(ws).write_file("keep.txt", b"new\n")
    st = (ws / "keep.txt").stat()
    assert (st.st_uid, st.st_gid) == (1234, 2345)


@pytest.mark.parametrize(
    ("target", "outside"),
    [
        ("/workspace/../etc/passwd", True),
        ("/workspace/./../../etc", True),
        ("/workspace/a/../b", True),  # `a` may be a link: `..` after it is not lexical
        ("/workspace/a/./b", False),
        ("/workspace", False),
        ("//workspace/x", True),
        ("../../etc", True),
        ("../x", False),
        ("../../x", True),
        ("a/../b", True),
        ("./a/b", False),
    ],
)
def test_a_link_target_is_normalised_before_it_is_judged(target: str, outside: bool) -> None:
    assert points_outside("sub/link", target) is outside


def test_a_previewed_link_through_dot_dot_is_red(ws: Path) -> None:
    p = preview(ws, "ln -s /workspace/../etc/passwd pw")
    try:
        assert p.effects.symlinks == [
            {"path": "pw", "target": "/workspace/../etc/passwd", "outside": True}
        ]
        assert p.to_dict()["risk"] == "red"
    finally:
        p.discard()
