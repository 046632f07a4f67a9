"""Running one child process with bounded time and bounded output.

The child starts in its own session, so on timeout (or cancellation) the
whole process group is killed, not just the direct child. Output beyond the
limit is read and dropped, never buffered: a flood cannot exhaust our memory.

``spawn`` and ``collect`` are separate so that the warm pool can start a
process long before it knows the command, and collect it in whatever event
loop later runs the command. Exit is watched through a pidfd, so no thread
and no SIGCHLD handler is involved.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import resource
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from luminaguard.protocols import ExecResult

if TYPE_CHECKING:
    from luminaguard.sandbox.cgroups import Cgroup

_CHUNK = 65536
DRAIN_AFTER_KILL_S = 2.0


# Joins the cgroups named by the first arguments ("0" is the writing process
# itself), then execs the rest. A shell builtin, not Python between fork and
# exec, so the parent can spawn with vfork: a Python preexec_fn in a forked
# copy of a large interpreter costs milliseconds.
JOIN_CGROUPS = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo 0 > "$1" || exit 125; shift; n=$((n-1)); done; exec "$@"'


@functools.cache
def prlimit_path() -> str | None:
    return shutil.which("prlimit", path="/usr/bin:/bin")


def joining(cgroup_procs: Sequence[str]) -> list[str]:
    """A command prefix that joins ``cgroup_procs`` (none: nothing to join)."""
    if not cgroup_procs:
        return []
    return ["/bin/sh", "-c", JOIN_CGROUPS, "sh", str(len(cgroup_procs)), *cgroup_procs]


@dataclass(frozen=True)
class Limits:
    """Per-process resource limits, set before exec so every descendant inherits them."""

    memory_bytes: int
    cpu_s: int
    file_bytes: int
    open_files: int

    def launcher(self, cgroup_procs: Sequence[str]) -> list[str] | None:
        """A command prefix that joins ``cgroup_procs`` and sets the limits, or
        ``None`` where util-linux's prlimit is missing (use ``preexec`` then)."""
        prlimit = prlimit_path()
        if prlimit is None:
            return None
        return [
            *joining(cgroup_procs),
            prlimit,
            f"--as={self.memory_bytes}",
            f"--cpu={self.cpu_s}",
            f"--fsize={self.file_bytes}",
            f"--nofile={self.open_files}",
            "--core=0",
            "--",
        ]

    def rlimits(self) -> list[tuple[int, int]]:
        """(resource, limit) pairs, each set as both soft and hard limit."""
        return [
            (resource.RLIMIT_AS, self.memory_bytes),
            (resource.RLIMIT_CPU, self.cpu_s),
            (resource.RLIMIT_FSIZE, self.file_bytes),
            (resource.RLIMIT_NOFILE, self.open_files),
            (resource.RLIMIT_CORE, 0),
        ]

    def preexec(self, join: Callable[[], None] | None = None) -> Callable[[], None]:
        values = self.rlimits()

        def apply() -> None:
            # Join the cgroup before anything else: from here on, every
            # process this child starts is counted against the limits.
            if join is not None:
                join()
            for which, value in values:
                resource.setrlimit(which, (value, value))

        return apply


class _Capped:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        room = self.limit - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        self.dropped += max(0, len(chunk) - max(room, 0))

    def text(self) -> str:
        out = self.data.decode("utf-8", errors="replace")
        if self.dropped:
            out += f"\n[... {self.dropped} more bytes not kept]"
        return out


class _Watch:
    """Reads stdout and stderr and watches the pidfd with plain loop readers:
    a handful of callbacks per command instead of a stream stack."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, proc: subprocess.Popen[bytes], limit: int
    ) -> None:
        assert proc.stdout is not None and proc.stderr is not None
        self.loop = loop
        self.out, self.err = _Capped(limit), _Capped(limit)
        self.exited: asyncio.Future[None] = loop.create_future()
        self.drained: asyncio.Future[None] = loop.create_future()
        self.pidfd = os.pidfd_open(proc.pid)
        self.fds = {proc.stdout.fileno(): self.out, proc.stderr.fileno(): self.err}
        for fd, buf in self.fds.items():
            os.set_blocking(fd, False)
            loop.add_reader(fd, self._read, fd, buf)
        loop.add_reader(self.pidfd, self._exit)

    def _read(self, fd: int, buf: _Capped) -> None:
        try:
            chunk = os.read(fd, _CHUNK)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if chunk:
            buf.add(chunk)
            return
        self.loop.remove_reader(fd)
        del self.fds[fd]
        if not self.fds and not self.drained.done():
            self.drained.set_result(None)

    def _exit(self) -> None:
        self.loop.remove_reader(self.pidfd)
        if not self.exited.done():
            self.exited.set_result(None)

    def close(self) -> None:
        for fd in list(self.fds):
            self.loop.remove_reader(fd)
        self.fds.clear()
        if not self.exited.done():
            self.loop.remove_reader(self.pidfd)
        os.close(self.pidfd)


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    pass_fds: Sequence[int] = (),
    preexec: Callable[[], None] | None = None,
    cwd: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session with piped stdin, stdout and stderr."""
    return subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env),
        cwd=cwd,
        start_new_session=True,
        pass_fds=tuple(pass_fds),
        preexec_fn=preexec,
    )


def spawn_limited(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    pass_fds: Sequence[int] = (),
    cwd: str | None = None,
    limits: Limits | None = None,
    cgroup: Cgroup | None = None,
) -> subprocess.Popen[bytes]:
    """``spawn`` inside the cgroup and under the limits, by launcher when possible."""
    launcher = limits.launcher(cgroup.procs_files() if cgroup else []) if limits else None
    if launcher is not None:
        return spawn([*launcher, *argv], env=env, pass_fds=pass_fds, cwd=cwd)
    join = cgroup.join_self if cgroup else None
    preexec = limits.preexec(join) if limits else join
    return spawn(argv, env=env, pass_fds=pass_fds, preexec=preexec, cwd=cwd)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


async def collect(
    proc: subprocess.Popen[bytes],
    *,
    stdin: str | None,
    timeout_s: float,
    output_limit: int,
    started: float | None = None,
    on_kill: Callable[[], None] | None = None,
) -> ExecResult:
    """Feed stdin, read capped output and wait for exit, within ``timeout_s``."""
    started = time.monotonic() if started is None else started
    loop = asyncio.get_running_loop()
    watch = _Watch(loop, proc, output_limit)
    assert proc.stdin is not None
    pipe_in = proc.stdin

    def feed() -> None:
        with contextlib.suppress(OSError):
            if stdin:
                pipe_in.write(stdin.encode("utf-8"))
            pipe_in.close()

    feeding = loop.run_in_executor(None, feed) if stdin else None
    if feeding is None:
        feed()
    both = {watch.exited, watch.drained}
    try:
        # asyncio.wait never cancels what it waits for, so the same futures
        # can be awaited again after a timeout.
        await asyncio.wait(both, timeout=timeout_s)
        timed_out = not all(f.done() for f in both)
    except BaseException:
        # A cancellation here would leak the live process tree: kill it first.
        _kill(proc, on_kill)
        watch.close()
        proc.wait()
        raise
    # On timeout the tree must die; after a normal exit of the sandbox's init,
    # anything left in its group or cgroup goes too.
    _kill(proc, on_kill)
    if timed_out:
        await asyncio.wait(both, timeout=DRAIN_AFTER_KILL_S)
    watch.close()
    if feeding is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(feeding, DRAIN_AFTER_KILL_S)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    code = proc.wait()
    return ExecResult(
        exit_code=124 if timed_out else (code if code >= 0 else 128 - code),
        stdout=watch.out.text(),
        stderr=watch.err.text(),
        duration_s=time.monotonic() - started,
        timed_out=timed_out,
        truncated=bool(watch.out.dropped or watch.err.dropped),
    )


def _kill(proc: subprocess.Popen[bytes], on_kill: Callable[[], None] | None) -> None:
    kill_group(proc)
    if on_kill is not None:
        on_kill()


async def run_process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    stdin: str | None,
    timeout_s: float,
    output_limit: int,
    limits: Limits | None = None,
    pass_fds: Sequence[int] = (),
    cwd: str | None = None,
    cgroup: Cgroup | None = None,
) -> ExecResult:
    started = time.monotonic()
    proc = spawn_limited(argv, env=env, pass_fds=pass_fds, cwd=cwd, limits=limits, cgroup=cgroup)
    return await collect(
        proc,
        stdin=stdin,
        timeout_s=timeout_s,
        output_limit=output_limit,
        started=started,
        on_kill=cgroup.kill if cgroup else None,
    )
