"""Running one child process with bounded time and bounded output.

The child starts in its own session, so on timeout (or cancellation) the
whole process group is killed, not just the direct child. Output beyond the
limit is read and dropped, never buffered: a flood cannot exhaust our memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from luminaguard.protocols import ExecResult

_CHUNK = 65536


@dataclass(frozen=True)
class Limits:
    """Per-process resource limits applied with setrlimit before exec."""

    memory_bytes: int
    cpu_s: int
    file_bytes: int
    open_files: int

    def preexec(self) -> Callable[[], None]:
        values = [
            (resource.RLIMIT_AS, self.memory_bytes),
            (resource.RLIMIT_CPU, self.cpu_s),
            (resource.RLIMIT_FSIZE, self.file_bytes),
            (resource.RLIMIT_NOFILE, self.open_files),
            (resource.RLIMIT_CORE, 0),
        ]

        def apply() -> None:
            for which, value in values:
                resource.setrlimit(which, (value, value))

        return apply


class _Capped:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.dropped = 0

    async def drain(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(_CHUNK):
            room = self.limit - len(self.data)
            if room > 0:
                self.data += chunk[:room]
            self.dropped += max(0, len(chunk) - max(room, 0))

    def text(self) -> str:
        out = self.data.decode("utf-8", errors="replace")
        if self.dropped:
            out += f"\n[... {self.dropped} more bytes not kept]"
        return out


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
) -> ExecResult:
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
        cwd=cwd,
        start_new_session=True,
        pass_fds=tuple(pass_fds),
        preexec_fn=limits.preexec() if limits else None,
    )
    out, err = _Capped(output_limit), _Capped(output_limit)
    timed_out = False

    async def feed() -> None:
        assert proc.stdin is not None
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            proc.stdin.write((stdin or "").encode("utf-8"))
            await proc.stdin.drain()
        proc.stdin.close()

    assert proc.stdout is not None and proc.stderr is not None
    jobs = [out.drain(proc.stdout), err.drain(proc.stderr), proc.wait()]
    if stdin is not None:
        jobs.append(feed())
    try:
        async with asyncio.timeout(timeout_s):
            await asyncio.gather(*jobs)
    except TimeoutError:
        timed_out = True
        _kill_group(proc)
        await proc.wait()
    except BaseException:
        # A cancellation here would leak the live process tree: kill it first.
        _kill_group(proc)
        with contextlib.suppress(BaseException):
            await asyncio.shield(proc.wait())
        raise
    code = proc.returncode if proc.returncode is not None else -1
    return ExecResult(
        exit_code=code if not timed_out else 124,
        stdout=out.text(),
        stderr=err.text(),
        duration_s=time.monotonic() - started,
        timed_out=timed_out,
        truncated=bool(out.dropped or err.dropped),
    )


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
