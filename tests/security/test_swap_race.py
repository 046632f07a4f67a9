"""Race-free host-side file operations: a process that swaps a workspace
directory for a symlink (renameat2 RENAME_EXCHANGE, atomically, in a loop)
while a GREEN read or a commit runs never gets the host file behind the link
read or written. Harmless if it succeeded: the "host" files are temp files."""

from __future__ import annotations

import asyncio
import ctypes
import os
import threading
from pathlib import Path

import pytest

from luminaguard.config import SandboxSettings
from luminaguard.errors import LuminaGuardError
from luminaguard.sandbox import workspace as workspace_module
from luminaguard.sandbox.bwrap import BwrapSandbox
from luminaguard.sandbox.workspace import Workspace

RENAME_EXCHANGE = 2
ROUNDS = 3000


def exchanger(a: Path, b: Path, stop: threading.Event) -> threading.Thread:
    libc = ctypes.CDLL(None, use_errno=True)
    AT_FDCWD = -100

    def swap() -> None:
        while not stop.is_set():
            libc.renameat2(AT_FDCWD, bytes(a), AT_FDCWD, bytes(b), RENAME_EXCHANGE)

    return threading.Thread(target=swap, daemon=True)


@pytest.fixture(params=["openat2", "walk"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "walk":
        monkeypatch.setattr(workspace_module, "_openat2_works", False)
    return str(request.param)


def setup(workspace: Path, tmp_path: Path) -> Path:
    """sub/ holds an ordinary file; `swap` is a symlink to a "host" dir holding a secret."""
    host = tmp_path / "host"
    host.mkdir()
    (host / "f.txt").write_text("HOST-SECRET")
    (workspace / "sub").mkdir()
    (workspace / "sub" / "f.txt").write_text("inside")
    os.symlink(host, workspace / "swap")
    return host


def test_a_read_racing_a_directory_swap_never_returns_the_host_file(
    workspace: Path, tmp_path: Path, mode: str
) -> None:
    setup(workspace, tmp_path)
    ws = Workspace(workspace)
    stop = threading.Event()
    t = exchanger(workspace / "sub", workspace / "swap", stop)
    t.start()
    seen = set()
    try:
        for _ in range(ROUNDS):
            try:
                seen.add(ws.read_file("sub/f.txt"))
            except LuminaGuardError:
                seen.add(b"refused")
    finally:
        stop.set()
        t.join(timeout=10)
    assert b"HOST-SECRET" not in seen, "a racing swap made the read follow a symlink out"
    assert b"inside" in seen or b"refused" in seen


def test_a_commit_racing_a_directory_swap_never_writes_the_host(
    workspace: Path, tmp_path: Path, mode: str
) -> None:
    host = setup(workspace, tmp_path)
    sandbox = BwrapSandbox(workspace, SandboxSettings(timeout_s=30, pool_size=0))
    for _ in range(15):
        p = asyncio.run(
            sandbox.preview(["/bin/sh", "-c", "echo changed > sub/f.txt; echo n > sub/new.txt"])
        )
        stop = threading.Event()
        t = exchanger(workspace / "sub", workspace / "swap", stop)
        t.start()
        try:
            sandbox.commit(p.handle)
        except LuminaGuardError:
            pass  # refused, or a conflict: either way nothing may land outside
        finally:
            stop.set()
            t.join(timeout=10)
            sandbox.discard(p.handle)
        assert (host / "f.txt").read_text() == "HOST-SECRET"
        assert not (host / "new.txt").exists()
        # Put things back as they were for the next round.
        if (workspace / "sub").is_symlink():
            os.rename(workspace / "sub", workspace / "tmp")
            os.rename(workspace / "swap", workspace / "sub")
            os.rename(workspace / "tmp", workspace / "swap")
        (workspace / "sub" / "f.txt").write_text("inside")
        (workspace / "sub" / "new.txt").unlink(missing_ok=True)
