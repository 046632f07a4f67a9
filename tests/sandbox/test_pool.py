from __future__ import annotations

import asyncio
from pathlib import Path

from luminaguard.config import SandboxSettings
from luminaguard.sandbox.bwrap import BwrapSandbox, Layout
from luminaguard.sandbox.pool import WarmPool

SETTINGS = SandboxSettings(timeout_s=30, pool_size=2)


def test_a_warm_sandbox_runs_a_command_like_a_cold_one(workspace: Path) -> None:
    async def scenario() -> None:
        pool = WarmPool(Layout(workspace), SETTINGS, 1)
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
            assert r.stdout.split() == ["1000", "/workspace", "Seccomp:", "2"]
            assert (workspace / "f").read_text() == "made\n"
            r = await pool.run(["/bin/cat"], stdin="piped in")
            assert r.stdout == "piped in"
            r = await pool.run(["no-such-command"])
            assert r.exit_code == 127 and "No such file" in r.stderr
        finally:
            pool.close()

    asyncio.run(scenario())


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
