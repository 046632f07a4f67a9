"""Memory and process-count limits for a whole sandbox, through cgroups.

Which mechanism is in force is decided once per process:

- cgroup v2, where our own cgroup is writable and already delegates the
  ``memory`` and ``pids`` controllers to its children (a systemd user
  service with ``Delegate=yes``, or root on a v2-only host);
- cgroup v1, where the ``memory`` and ``pids`` hierarchies are mounted and
  writable (running as root on an older host);
- otherwise per-process rlimits only. That is weaker: ``RLIMIT_AS`` bounds
  each process, not their sum, and ``RLIMIT_NPROC`` is not enforced for a
  process whose real uid outside the user namespace is 0, so a fork bomb run
  by root is bounded only by the wall-clock timeout. ``doctor`` says so.

A child joins its cgroup itself, between fork and exec, so nothing it starts
can escape the limit by racing us.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from luminaguard.config import SandboxSettings

ROOT = Path("/sys/fs/cgroup")
PARENT = "luminaguard"


@dataclass(frozen=True)
class Support:
    mechanism: str  # "cgroup-v2" | "cgroup-v1" | "rlimits"
    reason: str
    bases: tuple[Path, ...] = ()


@functools.cache
def support() -> Support:
    v2 = _v2_base()
    if isinstance(v2, Path):
        return Support("cgroup-v2", f"cgroup v2 under {v2}", (v2,))
    v1 = _v1_bases()
    if isinstance(v1, tuple):
        return Support("cgroup-v1", "cgroup v1 memory and pids hierarchies (running as root)", v1)
    return Support("rlimits", f"per-process rlimits only: {v2}; {v1}")


def _v2_base() -> Path | str:
    if not (ROOT / "cgroup.controllers").exists():
        return "no cgroup v2 hierarchy with controllers"
    try:
        line = next(
            x for x in Path("/proc/self/cgroup").read_text().splitlines() if x.startswith("0::")
        )
    except (OSError, StopIteration):
        return "our cgroup v2 path is unknown"
    base = ROOT / line[3:].lstrip("/")
    try:
        delegated = set((base / "cgroup.subtree_control").read_text().split())
    except OSError:
        return f"{base} is not readable"
    if not {"memory", "pids"} <= delegated:
        return f"cgroup v2: {base} does not delegate memory and pids to children"
    if not os.access(base, os.W_OK):
        return f"cgroup v2: {base} is not writable"
    return base


def _v1_bases() -> tuple[Path, ...] | str:
    bases = (ROOT / "memory", ROOT / "pids")
    if not all((b / "cgroup.procs").exists() for b in bases):
        return "no cgroup v1 memory and pids hierarchies"
    if not all(os.access(b, os.W_OK) for b in bases):
        return "cgroup v1 hierarchies are not writable (not root)"
    return tuple(b / PARENT for b in bases)


class Cgroup:
    """One sandbox's cgroup(s): created with limits, joined by the child, then destroyed."""

    @classmethod
    def for_settings(cls, settings: SandboxSettings) -> Cgroup:
        return cls(*cls.sizes(settings))

    @staticmethod
    def sizes(settings: SandboxSettings) -> tuple[int, int]:
        """(memory bytes, process count): what a sandbox's cgroup is made with."""
        return settings.memory_mb * 1024 * 1024, settings.pids_max

    def __init__(self, memory_bytes: int, pids_max: int) -> None:
        self.support = support()
        _sweep_once()
        self.dirs: list[Path] = []
        name = f"{os.getpid()}-{secrets.token_hex(4)}"
        if self.support.mechanism == "cgroup-v2":
            d = self.support.bases[0] / f"{PARENT}-{name}"
            d.mkdir()
            self.dirs = [d]
            _write(d / "memory.max", memory_bytes)
            with contextlib.suppress(OSError):
                _write(d / "memory.swap.max", 0)
            _write(d / "pids.max", pids_max)
        elif self.support.mechanism == "cgroup-v1":
            mem_base, pids_base = self.support.bases
            for base in (mem_base, pids_base):
                base.mkdir(exist_ok=True)
                (base / name).mkdir()
                self.dirs.append(base / name)
            _write(mem_base / name / "memory.limit_in_bytes", memory_bytes)
            with contextlib.suppress(OSError):
                _write(mem_base / name / "memory.memsw.limit_in_bytes", memory_bytes)
            _write(pids_base / name / "pids.max", pids_max)

    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs]

    def join_self(self) -> None:
        """Move the calling process in. Runs in the child between fork and exec."""
        pid = str(os.getpid()).encode()
        for d in self.dirs:
            fd = os.open(d / "cgroup.procs", os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)

    def pids(self) -> set[int]:
        out: set[int] = set()
        for d in self.dirs:
            with contextlib.suppress(OSError, ValueError):
                out |= {int(x) for x in (d / "cgroup.procs").read_text().split()}
        return out

    def kill(self) -> None:
        """SIGKILL everything inside, without waiting."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def destroy(self) -> None:
        """Kill whatever is still inside and remove the cgroup(s)."""
        deadline = time.monotonic() + 2.0
        remaining = list(self.dirs)
        while remaining:
            try:
                remaining[0].rmdir()
                remaining.pop(0)
                continue
            except FileNotFoundError:
                remaining.pop(0)
                continue
            except OSError:
                if time.monotonic() > deadline:
                    return  # left for sweep_stale() at the next start
            self.kill()
            # Killed processes leave the cgroup only once reaped; bounded wait.
            time.sleep(0.001)

    def destroy_later(self) -> None:
        """``destroy`` on a background thread: off the caller's critical path."""
        if self.dirs:
            _reaper().submit(self.destroy)


@functools.cache
def _reaper() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="lg-cgroup-reaper")


def _write(path: Path, value: int) -> None:
    path.write_text(str(value))


@functools.cache
def _sweep_once() -> int:
    return sweep_stale()


def sweep_stale() -> int:
    """Remove cgroups left by LuminaGuard processes that no longer exist."""
    s = support()
    removed = 0
    # Sandbox cgroups are created directly under the bases (see Cgroup).
    for parent in s.bases:
        if not parent.is_dir():
            continue
        for d in parent.iterdir():
            name = d.name.removeprefix(f"{PARENT}-")
            owner = name.split("-", 1)[0]
            if not d.is_dir() or not owner.isdigit() or Path(f"/proc/{owner}").exists():
                continue
            if s.mechanism == "cgroup-v2" and not d.name.startswith(PARENT + "-"):
                continue
            with contextlib.suppress(OSError):
                d.rmdir()
                removed += 1
    return removed
