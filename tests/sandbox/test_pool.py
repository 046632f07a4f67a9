from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from luminaguard.config import SandboxSettings
from luminaguard.errors import CompileError
from luminaguard.sandbox import backend_class, native
from luminaguard.sandbox.bwrap import BwrapSandbox, Layout
from luminaguard.sandbox.pool import SUPERVISOR, WarmPool, supervisor_command

from ..conftest import missing, require_backend

SETTINGS = SandboxSettings(timeout_s=30, pool_size=2)


@pytest.fixture(params=["compiled", "python"])
def supervisor(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each warm sandbox test runs with the compiled supervisor and with its Python twin."""
    if request.param == "python":
        monkeypatch.setattr(native, "supervisor", lambda: None)
    elif native.supervisor() is None:
        missing("the compiled supervisor cannot be built here (gcc, libc6-dev)")
    return str(request.param)


@pytest.mark.parametrize("backend", ["bwrap", "gvisor"])
def test_a_warm_sandbox_runs_a_command_like_a_cold_one(
    workspace: Path, supervisor: str, backend: str
) -> None:
    require_backend(backend)
    spawner = backend_class(backend).spawner

    async def scenario() -> None:
        pool = WarmPool(Layout(workspace), SETTINGS, 1, spawner=spawner)
        pool.fill()
        try:
            assert await asyncio.to_thread(pool.wait_idle, 1, 10)
            r = await pool.run(
                [
                    "/bin/bash",
                    "-c",
                    "id -u; pwd; echo made > f; grep Seccomp: /proc/self/status; exit 3",
                ],
                stdin=None,
            )
            assert r.exit_code == 3
            # In gVisor the sandbox's user is root of its own kernel, with no capabilities.
            uid = "0" if backend == "gvisor" else "1000"
            assert r.stdout.split() == [uid, "/workspace", "Seccomp:", "2"]
            assert (workspace / "f").read_text() == "made\n"
            r = await pool.run(["/bin/cat"], stdin="piped in")
            assert r.stdout == "piped in"
            r = await pool.run(["no-such-command"])
            assert r.exit_code == 127 and "No such file" in r.stderr
            # Arguments arrive exactly: empty ones, spaces, newlines, non-ASCII.
            odd = ["", "a b", "line\nbreak", "ünï", "-", "%d\n"]
            r = await pool.run(["/usr/bin/printf", "<%s>", *odd])
            assert r.exit_code == 0
            assert r.stdout == "".join(f"<{arg}>" for arg in odd)
        finally:
            pool.close()

    asyncio.run(scenario())


def test_the_compiled_supervisor_is_the_one_a_warm_sandbox_runs(workspace: Path) -> None:
    if native.supervisor() is None:
        missing("the compiled supervisor cannot be built here (gcc, libc6-dev)")
    layout, command = supervisor_command(Layout(workspace))
    assert command == [SUPERVISOR]
    assert (str(native.supervisor()), SUPERVISOR) in layout.ro_binds


def test_a_cached_binary_someone_else_could_change_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A planted or writable binary in the cache is rebuilt, never run."""
    if shutil.which("gcc") is None:
        missing("gcc is not installed")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    built = native.cached(native.SUPERVISOR_SOURCE)
    assert built.stat().st_mode & 0o777 == 0o755
    assert native.cached(native.SUPERVISOR_SOURCE) == built
    first = built.stat().st_ino
    built.chmod(0o777)
    assert native.cached(native.SUPERVISOR_SOURCE).stat().st_ino != first
    if os.geteuid() == 0:
        built.write_bytes(b"#!/bin/sh\necho planted\n")
        os.chown(built, 12345, 12345)
        assert native.cached(native.SUPERVISOR_SOURCE).read_bytes()[:4] == b"\x7fELF"
    # A cache directory others can write in: nothing in it is run.
    built.parent.chmod(0o777)
    with pytest.raises(CompileError, match="can be changed by others"):
        native.cached(native.SUPERVISOR_SOURCE)


def test_a_warm_sandbox_serves_one_command_only(workspace: Path) -> None:
    async def scenario() -> None:
        pool = WarmPool(Layout(workspace), SETTINGS, 2)
        pool.fill()
        try:
            first = await pool.run(
                ["/bin/bash", "-c", "echo secret > /tmp/left-behind; (sleep 60 &); echo $$"]
            )
            second = await pool.run(
                ["/bin/bash", "-c", "cat /tmp/left-behind 2>&1; pgrep sleep; true"]
            )
            assert first.exit_code == 0
            assert "No such file" in second.stdout
            assert "secret" not in second.stdout
        finally:
            pool.close()

    asyncio.run(scenario())


def test_the_pool_refills_and_close_leaves_no_process(workspace: Path) -> None:
    async def scenario() -> list[int]:
        pool = WarmPool(Layout(workspace), SETTINGS, 2)
        pool.fill()
        assert await asyncio.to_thread(pool.wait_idle, 2, 10)
        await pool.run(["/bin/true"])
        assert await asyncio.to_thread(pool.wait_idle, 2, 10)
        pids = [w.proc.pid for w in pool.idle]
        stats = pool.stats_dict()
        assert stats["spawned"] >= 3 and stats["failures"] == 0
        assert stats["spawn_ms"]["p50"] > 0  # type: ignore[index]
        pool.close()
        return pids

    pids = asyncio.run(scenario())
    for pid in pids:
        stat = Path(f"/proc/{pid}/stat")
        assert not stat.exists() or stat.read_text().split()[2] == "Z"


def test_a_runaway_command_in_a_warm_sandbox_is_killed(workspace: Path) -> None:
    async def scenario() -> None:
        pool = WarmPool(Layout(workspace), SETTINGS, 1)
        try:
            r = await pool.run(["/bin/bash", "-c", "(sleep 300 &); sleep 300"], timeout_s=1)
            assert r.timed_out and r.exit_code == 124
        finally:
            pool.close()

    asyncio.run(scenario())


def test_the_sandbox_uses_the_pool_across_event_loops(workspace: Path) -> None:
    sandbox = BwrapSandbox(workspace, SETTINGS)
    try:
        for i in range(3):
            r = asyncio.run(sandbox.exec(["/bin/bash", "-c", f"echo {i}"]))
            assert r.stdout == f"{i}\n"
    finally:
        sandbox.close()
