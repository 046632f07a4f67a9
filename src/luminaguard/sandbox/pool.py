"""The warm pool: sandboxes started ahead of need.

Each warm sandbox is a bubblewrap sandbox already set up (namespaces, mounts,
seccomp, cgroup, limits) whose process is a small supervisor waiting for one
command; on request it replaces itself with the command. Acquiring one and
running a command therefore costs about what a plain subprocess costs.

A warm sandbox serves one command and is then destroyed, never handed to
another: nothing (files in /tmp, background processes) carries over. The
pool refills in the background. Idle sandboxes belong to no event loop; the
command is collected in the loop that runs it.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import statistics
import subprocess
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Generic, TypeVar

from luminaguard.config import SandboxSettings
from luminaguard.protocols import ExecResult
from luminaguard.sandbox import native
from luminaguard.sandbox.cgroups import Cgroup
from luminaguard.sandbox.process import collect, kill_group
from luminaguard.sandbox.profile import HELPER_DIR, SANDBOX_PYTHON, Layout
from luminaguard.sandbox.spawn import Spawn
from luminaguard.stats import percentile


@dataclass(eq=False)
class Warm:
    proc: subprocess.Popen[bytes]
    control: int
    ready: int
    cgroup: Cgroup
    spawned: float

    def close_control(self) -> None:
        # Close once and forget the number: a second close could hit a
        # descriptor that another sandbox has been given since.
        if self.control >= 0:
            os.close(self.control)
            self.control = -1

    def destroy(self) -> None:
        kill_group(self.proc)
        self.cgroup.destroy()
        self.close_control()
        if self.ready >= 0:
            os.close(self.ready)
            self.ready = -1
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            with contextlib.suppress(OSError):
                if pipe is not None:
                    pipe.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)


MAX_REQUEST = 60_000


def _request(argv: Sequence[str]) -> bytes:
    """What the supervisor reads (``supervisor_main``): the count, then each argument NUL-ended."""
    return b"%d\n" % len(argv) + b"".join(os.fsencode(arg) + b"\0" for arg in argv)


SUPERVISOR = "/.luminaguard/supervisor"
"""Where the compiled supervisor is bound in a sandbox (``native.supervisor``)."""


def supervisor_command(layout: Layout) -> tuple[Layout, list[str]]:
    """The layout and command of a warm sandbox's supervisor: the compiled
    one where it could be built, else its Python twin."""
    binary = native.supervisor()
    if binary is None:
        return layout, [SANDBOX_PYTHON, "-I", "-S", f"{HELPER_DIR}/supervisor_main.py"]
    return replace(layout, ro_binds=(*layout.ro_binds, (str(binary), SUPERVISOR))), [SUPERVISOR]


SAMPLES = 1024
"""Latency samples a pool keeps (the newest): a long-lived service's pool stays small."""


def _samples() -> deque[float]:
    return deque(maxlen=SAMPLES)


@dataclass
class PoolStats:
    in_use: int = 0
    waiters: int = 0
    served: int = 0
    """Commands run, from an idle sandbox or (none idle) a new one."""
    served_idle: int = 0
    """Of those, the ones an idle sandbox was ready for."""
    spawned: int = 0
    failures: int = 0
    replaced: int = 0
    """Sandboxes found broken while being made ready, and made again (micro-VM clones)."""
    spawn_ms: deque[float] = field(default_factory=_samples)
    """Starting a sandbox until it is ready."""
    acquire_ms: deque[float] = field(default_factory=_samples)
    """A command's wait for a sandbox: ~0 when one is idle, a spawn when none is."""

    def to_dict(self, idle: int) -> dict[str, object]:
        return {
            "idle": idle,
            "in_use": self.in_use,
            "waiters": self.waiters,
            "served": self.served,
            "served_idle": self.served_idle,
            "spawned": self.spawned,
            "failures": self.failures,
            "replaced": self.replaced,
            "spawn_ms": _summary(self.spawn_ms),
            "acquire_ms": _summary(self.acquire_ms),
        }


def _summary(ms: deque[float]) -> dict[str, float]:
    def pct(p: float) -> float:
        return round(percentile(list(ms), p), 2) if ms else 0.0

    return {
        "p50": pct(0.5),
        "p95": pct(0.95),
        "p99": pct(0.99),
        "mean": round(statistics.fmean(ms), 3) if ms else 0.0,
    }


T = TypeVar("T")


class Spares(Generic[T]):
    """Keeps ``size`` spares of one kind ready, made on a thread of its own
    (no event loop involved, so a pool outlives the loop that first used it).
    A kind says how a spare is made ready (``_make``) and let go (``_drop``)."""

    def __init__(self, size: int, thread_name: str) -> None:
        self.size = size
        self.idle: deque[T] = deque()
        self.stats = PoolStats()
        self._spawning = 0
        self._closed = False
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)

    def _make(self) -> T:
        raise NotImplementedError

    def _drop(self, spare: T) -> None:
        raise NotImplementedError

    def fill(self) -> None:
        """Start making spares until ``size`` are idle or on their way (in the background)."""
        with self._lock:
            wanted = 0 if self._closed else self.size - len(self.idle) - self._spawning
            self._spawning += max(0, wanted)
        for _ in range(max(0, wanted)):
            self._executor.submit(self._refill_one)

    def _refill_one(self) -> None:
        try:
            spare: T | None = self._make()
        except Exception:
            self.stats.failures += 1
            spare = None
        with self._lock:
            self._spawning -= 1
            if spare is not None and not self._closed:
                self.idle.append(spare)
                spare = None
            self._changed.notify_all()
        if spare is not None:
            self._drop(spare)

    def wait_idle(self, count: int, timeout_s: float) -> bool:
        """Block until ``count`` spares are idle; False on timeout."""
        with self._changed:
            return self._changed.wait_for(
                lambda: len(self.idle) >= count or self._closed, timeout_s
            )

    def _take(self) -> T | None:
        """An idle spare (counted as served), or None when none is idle."""
        with self._lock:
            spare = self.idle.popleft() if self.idle else None
        self.stats.served += 1
        self.stats.served_idle += spare is not None
        return spare

    def stats_dict(self) -> dict[str, object]:
        return self.stats.to_dict(idle=len(self.idle))


class WarmPool(Spares[Warm]):
    """Keeps ``size`` sandboxes of one layout ready."""

    def __init__(
        self,
        layout: Layout,
        settings: SandboxSettings,
        size: int,
        *,
        spawner: type[Spawn] = Spawn,
    ) -> None:
        # Spawning forks this process: the pool's thread does it, off the event loop.
        super().__init__(size, "lg-pool")
        self.layout = layout
        self.spawner = spawner
        self.settings = settings
        # Every sandbox not yet destroyed, so close() can reach those whose
        # spawn finished after the event loop that asked for them was gone.
        self._live: set[Warm] = set()
        # A pool its owner forgot to close still tears its sandboxes (and
        # their cgroups) down when the process exits.
        atexit.register(self.close)

    def _spawn(self) -> Warm:
        started = time.monotonic()
        control_r, control_w = os.pipe()
        ready_r, ready_w = os.pipe()
        layout, supervisor = supervisor_command(self.layout)
        command = [*supervisor, str(control_r), str(ready_w)]
        spawn: Spawn | None = None
        try:
            spawn = self.spawner(layout, self.settings, command, pass_fds=[control_r, ready_w])
            proc = spawn.popen()
        except BaseException:
            if spawn is not None:
                spawn.close(now=True)
            for fd in (control_w, ready_r):
                os.close(fd)
            raise
        finally:
            if spawn is not None:
                spawn.release_data()
            os.close(control_r)
            os.close(ready_w)
        warm = Warm(proc, control_w, ready_r, spawn.cgroup, started)
        with self._lock:
            self._live.add(warm)
        return warm

    def _destroy(self, warm: Warm) -> None:
        with self._lock:
            self._live.discard(warm)
        warm.destroy()

    def _drop(self, spare: Warm) -> None:
        self._destroy(spare)

    def _make(self) -> Warm:
        """Spawn and wait until the supervisor is up (it writes one byte)."""
        warm = self._spawn()
        if os.read(warm.ready, 1) != b"R":
            self._destroy(warm)
            raise OSError("the warm sandbox did not start")
        self.stats.spawn_ms.append((time.monotonic() - warm.spawned) * 1000)
        self.stats.spawned += 1
        return warm

    async def acquire(self) -> Warm:
        """An idle sandbox, or a new one when none is idle. The refill is the
        caller's to start, once its command is done (``run``): spawning
        beside a running command would slow it."""
        started = time.monotonic()
        try:
            return await self._acquire()
        finally:
            self.stats.acquire_ms.append((time.monotonic() - started) * 1000)

    async def _acquire(self) -> Warm:
        idle = self._take()
        if idle is None:
            self.stats.waiters += 1
            try:
                idle = await asyncio.get_running_loop().run_in_executor(None, self._spawn)
            finally:
                self.stats.waiters -= 1
        return idle

    @staticmethod
    def fits(argv: Sequence[str]) -> bool:
        """Whether the request fits in one write to the control pipe (else: a cold sandbox)."""
        return len(_request(argv)) <= MAX_REQUEST

    async def run(
        self, argv: Sequence[str], *, stdin: str | None = None, timeout_s: float | None = None
    ) -> ExecResult:
        warm = await self.acquire()
        self.stats.in_use += 1
        started = time.monotonic()
        try:
            # Below the pipe's 64 KiB capacity (see `fits`): the write cannot block.
            os.write(warm.control, _request(argv))
            warm.close_control()
            return await collect(
                warm.proc,
                stdin=stdin,
                timeout_s=timeout_s or self.settings.timeout_s,
                output_limit=self.settings.output_limit_kb * 1024,
                started=started,
                on_kill=warm.cgroup.kill,
            )
        finally:
            self.stats.in_use -= 1
            # The command has exited and its output is read; tearing the
            # sandbox down is off the caller's critical path.
            if self._closed:
                self._destroy(warm)
            else:
                self._executor.submit(self._destroy, warm)
                self.fill()

    def close(self) -> None:
        atexit.unregister(self.close)
        self._closed = True
        self._executor.shutdown(wait=True, cancel_futures=True)
        self.idle.clear()
        with self._lock:
            live, self._live = list(self._live), set()
        for warm in live:
            warm.destroy()
