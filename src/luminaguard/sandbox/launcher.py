"""A sandbox's first process on the host: the native launcher (``launch.c``),
started before its command is known.

On cgroup v1 (and v2 without ``favordynmods``) the first move of a process
into a cgroup after a quiet spell waits out an RCU grace period: 5-15 ms,
next to nothing when moves come back to back. Tool calls come after the model
has thought, so each one paid it. A launcher moves itself into its sandbox's
fresh cgroups as soon as it starts; one per cgroup size is kept spare,
already moved. A sandbox start takes it and writes it the command line (the
rlimits, our mount namespace and host user, bubblewrap's argv and
environment), and a new spare is started off the caller's path.

It also does what a chain of programs did (``sh`` joining the cgroups,
``prlimit``, ``nsenter``: three execs, each loading its locale) in one.

A spare holds nothing of any sandbox's: its cgroups (fresh, empty), the pipes
for its command's stdin, stdout and stderr, and bubblewrap's data (the seccomp
filter, passwd, group: the same for every sandbox). It is used once, then it
is that sandbox. Where no C compiler is, sandboxes start by the chain
(``process.Limits.launcher``).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import subprocess
import threading
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from luminaguard.sandbox import native
from luminaguard.sandbox.cgroups import Cgroup

if TYPE_CHECKING:
    from luminaguard.sandbox.hostuser import Entry
    from luminaguard.sandbox.process import Limits

MAX_KINDS = 4
"""Spares kept at most (one per cgroup size and data): a process using more
sizes than this starts the rarer ones fresh."""

Key = tuple[tuple[int, int], tuple[tuple[str, bytes], ...]]


class Launcher:
    """One launcher process: in its cgroups, holding its pipes and bubblewrap's
    data at ``data_fds`` (the numbers it has them at), waiting to be told what to run."""

    def __init__(
        self,
        binary: Path,
        sizes: tuple[int, int],
        data: Mapping[str, bytes],
        pass_fds: Sequence[int] = (),
    ) -> None:
        self.cgroup = Cgroup(*sizes)
        self.started = False
        ctl, self._ctl = os.pipe()
        ours = [ctl]
        try:
            self.data_fds = {name: data_fd(blob) for name, blob in data.items()}
            ours += self.data_fds.values()
            self.proc = subprocess.Popen(
                [str(binary), str(ctl), *self.cgroup.procs_files()],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={},
                start_new_session=True,
                pass_fds=(*ours, *pass_fds),
            )
        except BaseException:
            os.close(self._ctl)
            self.cgroup.destroy_later()
            raise
        finally:
            for fd in ours:
                os.close(fd)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def start(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        limits: Limits,
        entry: Entry | None,
        data_used: Collection[str],
    ) -> subprocess.Popen[bytes]:
        """Run ``argv`` (a path first) under ``limits``, entering ``entry``'s
        namespace as its user; the data not in ``data_used`` is closed first."""
        records = [f"R{which}={value}" for which, value in limits.rlimits()]
        records += [f"C{fd}" for name, fd in self.data_fds.items() if name not in data_used]
        if entry is not None:
            records += [f"N{entry.mount_ns}", f"G{entry.gid}", f"U{entry.uid}"]
        records += [f"A{arg}" for arg in argv]
        records += [f"E{name}={value}" for name, value in env.items()]
        if any("\0" in r for r in records):
            raise ValueError("embedded null byte")
        block = b"".join(r.encode() + b"\0" for r in records)
        self.started = True
        view = memoryview(block)
        try:
            while view:
                view = view[os.write(self._ctl, view) :]
        except BrokenPipeError:
            pass  # it has died: its exit status and stderr say why
        finally:
            os.close(self._ctl)
        return self.proc

    def discard(self) -> None:
        """An unused launcher: told there is nothing to run, its cgroups removed."""
        if self.started:
            return
        self.started = True
        os.close(self._ctl)  # EOF with no command: it exits
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=1)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        self.cgroup.destroy()


class Spares:
    """One spare launcher per kind of sandbox start in use, refilled in the background."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[Key, Launcher] = {}
        self._filling: set[Key] = set()
        self._pid = os.getpid()
        self._closed = False

    def take(
        self, sizes: tuple[int, int], data: Mapping[str, bytes], pass_fds: Sequence[int] = ()
    ) -> Launcher | None:
        """A launcher for a sandbox of these cgroup ``sizes``: the spare when
        there is one, else a new one; None where none can be built."""
        binary = native.launcher()
        if binary is None:
            return None
        if pass_fds:
            # Descriptors of this start's own: a launcher made now, for it.
            return Launcher(binary, sizes, data, pass_fds)
        key: Key = (sizes, tuple(sorted(data.items())))
        with self._lock:
            if self._pid != os.getpid():
                # A forked child: the spares are its parent's processes.
                self._idle, self._filling, self._pid = {}, set(), os.getpid()
            spare = self._idle.pop(key, None)
        if spare is not None and not spare.alive():
            spare.discard()
            spare = None
        launcher = spare or Launcher(binary, sizes, data)
        self._refill(binary, key, sizes, data)
        return launcher

    def _refill(
        self, binary: Path, key: Key, sizes: tuple[int, int], data: Mapping[str, bytes]
    ) -> None:
        with self._lock:
            if self._closed or key in self._idle or key in self._filling:
                return
            self._filling.add(key)

        def make() -> None:
            try:
                spare: Launcher | None = Launcher(binary, sizes, data)
            except OSError:
                spare = None  # the next start makes its own, and says why if it fails
            with self._lock:
                self._filling.discard(key)
                if spare is None:
                    return
                extra = [spare] if self._closed else []
                if not self._closed:
                    if len(self._idle) >= MAX_KINDS:
                        extra.append(self._idle.pop(next(iter(self._idle))))
                    self._idle[key] = spare
            for launcher in extra:
                launcher.discard()

        _filler().submit(make)

    def close(self) -> None:
        """Every spare discarded (at exit), none made after."""
        with self._lock:
            self._closed = True
            idle, self._idle = list(self._idle.values()), {}
            ours = self._pid == os.getpid()
        if ours:
            for launcher in idle:
                launcher.discard()


@functools.cache
def _filler() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="lg-spare-launcher")


def data_fd(data: bytes) -> int:
    """A readable fd holding ``data``, for bwrap's ``--ro-bind-data`` and ``--seccomp``."""
    r, w = os.pipe()
    # Each is a few KiB at most, below the pipe buffer: the write cannot block.
    os.write(w, data)
    os.close(w)
    return r


SPARES = Spares()
atexit.register(SPARES.close)
