from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from pathlib import Path

import pytest

from luminaguard.config import SandboxSettings
from luminaguard.errors import CommitConflict, SandboxError
from luminaguard.policy.effects import classify_effects
from luminaguard.protocols import Preview
from luminaguard.sandbox.bwrap import BwrapSandbox


def tree(root: Path) -> dict[str, str]:
    """Every path under root with a hash of what it is (content, link target or mode)."""
    out = {}
    for here, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(here) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "link:" + os.readlink(p)
            elif p.is_dir():
                out[rel] = f"dir:{p.stat().st_mode:o}"
            else:
                out[rel] = f"{p.stat().st_mode:o}:" + hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture
def ws(workspace: Path) -> Path:
    (workspace / "a.txt").write_text("hello\n")
    (workspace / "b.txt").write_text("keep\n")
    (workspace / "sub").mkdir()
    (workspace / "sub" / "f").write_text("x\n")
    (workspace / "bin.dat").write_bytes(b"\x00\x01\x02")
    return workspace


class Previewed:
    """A preview with the sandbox that made it: commit and discard go by handle."""

    def __init__(self, sandbox: BwrapSandbox, p: Preview) -> None:
        self.sandbox, self.p = sandbox, p
        self.effects, self.handle = p.effects, p.handle

    def to_dict(self) -> dict[str, object]:
        risk = classify_effects(self.effects, timed_out=self.p.result.timed_out).risk
        return {**self.p.to_dict(), "risk": risk.label}

    def commit(self) -> None:
        self.sandbox.commit(self.handle)

    def discard(self) -> None:
        self.sandbox.discard(self.handle)


def preview(ws: Path, script: str) -> Previewed:
    sandbox = BwrapSandbox(ws, SandboxSettings(timeout_s=30, pool_size=0))
    return Previewed(sandbox, asyncio.run(sandbox.preview(["/bin/bash", "-c", script])))


def test_a_preview_reports_every_kind_of_change_and_leaves_the_workspace_untouched(
    ws: Path,
) -> None:
    before = tree(ws)
    p = preview(
        ws,
        "echo new > c.txt; echo more >> a.txt; rm b.txt; rm -r sub; mkdir sub; echo y > sub/g;"
        " chmod 755 a.txt; ln -s a.txt alias; mkdir -p d/e; printf '\\x00\\x09' > bin.dat; echo out",
    )
    try:
        assert tree(ws) == before
        d = p.to_dict()
        assert d["created"] == ["c.txt", "sub/g"]
        assert d["created_dirs"] == ["d", "d/e"]
        assert [m["path"] for m in d["modified"]] == ["a.txt", "bin.dat"]
        assert "+more" in d["modified"][0]["diff"]
        assert d["modified"][1]["binary"] and "3 → 2 bytes" in d["modified"][1]["diff"]
        assert d["deleted"] == ["b.txt", "sub/f"]
        assert d["mode_changes"] == [{"path": "a.txt", "before": 0o644, "after": 0o755}]
        assert d["symlinks"] == [{"path": "alias", "target": "a.txt", "outside": False}]
        assert d["exit_code"] == 0 and d["stdout"] == "out\n"
        assert d["risk"] == "orange"
    finally:
        p.discard()


def test_commit_applies_exactly_the_previewed_changes(ws: Path, tmp_path: Path) -> None:
    script = "echo new > c.txt; echo more >> a.txt; rm b.txt; rm -r sub; mkdir sub; echo y > sub/g; chmod 755 a.txt; ln -s a.txt alias"
    reference = tmp_path / "reference"
    shutil.copytree(ws, reference, symlinks=True)
    os.chmod(reference / "a.txt", 0o644)
    # The same command run for real on a copy is what the commit must produce.
    BwrapSandbox(reference, SandboxSettings(pool_size=0))
    asyncio.run(
        BwrapSandbox(reference, SandboxSettings(pool_size=0)).exec(["/bin/bash", "-c", script])
    )
    p = preview(ws, script)
    p.commit()
    assert tree(ws) == tree(reference)
    assert not Path(p.handle).exists(), "the committed preview's layer is gone"


def test_an_obfuscated_command_is_shown_by_what_it_does(ws: Path) -> None:
    # base64 of "rm a.txt"
    p = preview(ws, 'eval "$(echo cm0gYS50eHQ= | base64 -d)"')
    try:
        assert p.effects.deleted == ["a.txt"]
        assert p.to_dict()["risk"] == "orange"
        assert (ws / "a.txt").exists()
    finally:
        p.discard()


def test_a_command_that_changes_nothing_is_green(ws: Path) -> None:
    p = preview(ws, "cat a.txt; ls -la; grep -r hello .")
    assert p.effects.is_empty()
    assert p.to_dict()["risk"] == "green"
    p.discard()


def test_only_new_files_are_yellow(ws: Path) -> None:
    p = preview(ws, "mkdir -p build && echo artefact > build/out.txt")
    assert p.to_dict()["risk"] == "yellow"
    assert p.effects.created == ["build/out.txt"] and p.effects.created_dirs == ["build"]
    p.discard()


def test_a_link_out_of_the_workspace_is_red(ws: Path) -> None:
    p = preview(ws, "ln -s /etc/passwd pw; ln -s ../../outside up")
    d = p.to_dict()
    assert d["risk"] == "red"
    assert {s["path"]: s["outside"] for s in d["symlinks"]} == {"pw": True, "up": True}
    p.discard()


def test_a_network_attempt_is_recorded_and_red(ws: Path) -> None:
    code = "import urllib.request as u\ntry:\n    u.urlopen('http://example.invalid/', timeout=5)\nexcept Exception as e:\n    print('refused', e)"
    p = preview(ws, f'python3 -c "{code}"')
    d = p.to_dict()
    assert d["risk"] == "red"
    assert d["network"][0]["host"] == "example.invalid"
    assert d["network"][0]["blocked"] is True
    p.discard()


def test_a_write_through_a_symlink_to_the_host_is_not_observed_as_a_workspace_change(
    ws: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, ws / "escape")
    p = preview(ws, "echo pwned > escape/file 2>&1; true")
    assert list(outside.iterdir()) == []
    assert p.effects.created == []
    p.commit()
    assert list(outside.iterdir()) == []


def test_commit_refuses_when_the_workspace_changed_since_the_preview(ws: Path) -> None:
    p = preview(ws, "echo more >> a.txt; echo new > c.txt")
    (ws / "a.txt").write_text("changed meanwhile\n")
    with pytest.raises(CommitConflict, match=r"a\.txt"):
        p.commit()
    assert not (ws / "c.txt").exists(), "a conflicting commit applied part of the changes"
    p.discard()


def test_commit_refuses_a_parent_swapped_for_a_symlink_out_of_the_workspace(
    ws: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    p = preview(ws, "echo new > sub/new.txt")
    shutil.rmtree(ws / "sub")
    os.symlink(outside, ws / "sub")
    with pytest.raises(CommitConflict):
        p.commit()
    assert list(outside.iterdir()) == []
    p.discard()


def test_a_file_created_meanwhile_at_a_created_path_is_a_conflict(ws: Path) -> None:
    p = preview(ws, "echo mine > c.txt")
    (ws / "c.txt").write_text("theirs\n")
    with pytest.raises(CommitConflict):
        p.commit()
    assert (ws / "c.txt").read_text() == "theirs\n"
    p.discard()


def test_a_preview_cannot_be_committed_twice(ws: Path) -> None:
    p = preview(ws, "echo x > once.txt")
    p.commit()
    with pytest.raises(SandboxError):
        p.commit()
