"""The one way a bubblewrap sandbox is started: a layout and a command in,
a process (or, for a spawner that execs it itself, a command line) out.

One-shot commands (``bwrap.launch``), the warm pool's supervisors and MCP
servers all start here, so each gets the same namespaces, seccomp filter,
limits, cgroup and clean environment, and none starts before the self-test
has passed (``selftest.GATE``).

What this is not: the policy of what a sandbox may see (``bwrap.Layout`` and
``bwrap.build_argv``) or how output is collected (``process.collect``).

bwrap reads three small files at start (passwd, group, the seccomp filter).
They are handed over as inherited pipe descriptors when we spawn the process
(``popen``); for a spawner that passes no descriptors (the MCP SDK), they are
private files that a shell opens as fds 7-9 just before it execs bwrap.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from luminaguard.config import SandboxSettings
from luminaguard.errors import SandboxError
from luminaguard.sandbox import hostuser, seccomp
from luminaguard.sandbox.cgroups import Cgroup
from luminaguard.sandbox.launcher import SPARES, Launcher, data_fd
from luminaguard.sandbox.network import EgressProxy
from luminaguard.sandbox.process import spawn_limited
from luminaguard.sandbox.profile import (
    GROUP,
    PASSWD,
    Layout,
    build_argv,
    find_bwrap,
    limits_of,
    sandbox_env,
)

if TYPE_CHECKING:
    from luminaguard.sandbox.selftest import Gate

FdMode = Literal["inherit", "files"]

# dash takes one digit per redirection: bwrap's data files are fds 7, 8 and 9.
FILE_FDS = {"seccomp": 7, "passwd": 8, "group": 9}
OPENER = 'exec 7<"$1" 8<"$2" 9<"$3"; shift 3; exec "$@"'


class Spawn:
    """One sandbox about to start: its cgroup, bwrap's data, its proxy socket
    directory. ``close`` releases all of it (and kills what is left in the
    cgroup); a Spawn is used once."""

    def __init__(
        self,
        layout: Layout,
        settings: SandboxSettings,
        command: Sequence[str],
        *,
        fds: FdMode = "inherit",
        pass_fds: Sequence[int] = (),
        gated: bool = True,
    ) -> None:
        """``pass_fds``: descriptors of ours the command gets, at the same numbers."""
        if gated:
            self.gate().check(settings)
        self.settings = settings
        self.limits = limits_of(settings)
        self.pass_fds = tuple(pass_fds)
        self._fds: list[int] = []
        self._private: Path | None = None
        self._launcher: Launcher | None = None
        if self.launches and fds == "inherit":
            self._launcher = SPARES.take(Cgroup.sizes(settings), bwrap_data(), self.pass_fds)
        self.cgroup = self._launcher.cgroup if self._launcher else self.cgroup_for(settings)
        try:
            if layout.network.proxied:
                layout = replace(layout, proxy_dir=self._private_dir() / "net")
                layout.proxy_dir.mkdir()  # type: ignore[union-attr]
            self.layout = layout
            self._build(command, fds)
        except BaseException:
            self.close()
            raise

    launches = True
    """Started by the native launcher where there is one (``launcher.py``). A
    subclass that starts its own way, or sizes its cgroup otherwise, says False."""

    @staticmethod
    def cgroup_for(settings: SandboxSettings) -> Cgroup:
        return Cgroup.for_settings(settings)

    @staticmethod
    def gate() -> Gate:
        """The self-test every sandbox of this kind waits for."""
        from luminaguard.sandbox.selftest import GATE

        return GATE

    def _build(self, command: Sequence[str], fds: FdMode) -> None:
        """Sets ``argv`` and ``env``: the command line that starts the sandbox."""
        # As root: bwrap's view of the layout and the prefix that starts it
        # as an unprivileged host user (``hostuser``).
        self._bwrap_layout, self._prefix = hostuser.adapt(self.layout)
        # Started in our namespace, it gets the /etc prepared there (passwd
        # and group included); otherwise they come as data.
        etc = hostuser.prepared_etc() if self._prefix else None
        if etc is not None:
            self._bwrap_layout = replace(self._bwrap_layout, etc=str(etc))
        data = bwrap_data()
        self._data_used = ("seccomp",) if etc is not None else tuple(data)
        if self._launcher is not None:
            self._inner = build_argv(
                find_bwrap(), self._bwrap_layout, self._launcher.data_fds, command
            )
            self.argv = [*self._prefix, *self._inner]
        elif fds == "inherit":
            numbers = {name: data_fd(data[name]) for name in self._data_used}
            self._fds = list(numbers.values())
            self.argv = self._bwrap_argv(numbers, command)
        else:
            self.argv = self._opened_by_shell(data, command)  # the shell opens all three
        self.env = sandbox_env(self._bwrap_layout)

    def _private_dir(self) -> Path:
        if self._private is None:
            self._private = Path(tempfile.mkdtemp(prefix="lg-spawn-"))
        return self._private

    def _opened_by_shell(self, data: dict[str, bytes], command: Sequence[str]) -> list[str]:
        launcher = self.limits.launcher(self.cgroup.procs_files())
        if launcher is None:
            raise SandboxError(
                "prlimit (util-linux) is needed to start a long-lived sandboxed process"
            )
        files = []
        for name in FILE_FDS:
            path = self._private_dir() / name
            path.write_bytes(data[name])
            files.append(str(path))
        inner = self._bwrap_argv(FILE_FDS, command)
        return ["/bin/sh", "-c", OPENER, "sh", *files, *launcher, *inner]

    def _bwrap_argv(self, fds: dict[str, int], command: Sequence[str]) -> list[str]:
        return [*self._prefix, *build_argv(find_bwrap(), self._bwrap_layout, fds, command)]

    @property
    def proxy_dir(self) -> Path | None:
        return self.layout.proxy_dir

    def popen(self) -> subprocess.Popen[bytes]:
        """Start it (``fds="inherit"``), in its cgroup and under its limits."""
        if self._launcher is not None:
            ns = hostuser.namespace() if self._prefix else None
            return self._launcher.start(
                self._inner,
                self.env,
                limits=self.limits,
                entry=ns.entry() if ns is not None else None,
                data_used=self._data_used,
            )
        return spawn_limited(
            self.argv,
            env=self.env,
            pass_fds=[*self._fds, *self.pass_fds],
            limits=self.limits,
            cgroup=self.cgroup,
        )

    def release_data(self) -> None:
        """Close our copies of bwrap's data pipes once the child holds them."""
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []

    @contextlib.asynccontextmanager
    async def proxy(self) -> AsyncIterator[EgressProxy | None]:
        """The host-side egress proxy while the sandbox runs (None without a proxied network)."""
        if self.proxy_dir is None:
            yield None
            return
        async with EgressProxy(self.layout.network, self.proxy_dir) as proxy:
            yield proxy

    def close(self, *, now: bool = False) -> None:
        self.release_data()
        if self._launcher is not None and not self._launcher.started:
            self._launcher.discard()  # never told what to run
        if now:
            self.cgroup.destroy()
        else:
            # destroy() kills whatever is left before it removes the cgroup.
            self.cgroup.destroy_later()
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)
            self._private = None


@functools.cache
def bwrap_data() -> dict[str, bytes]:
    """What bwrap reads from descriptors: the seccomp filter, passwd and group."""
    return {
        "seccomp": seccomp.filter_program(),
        "passwd": PASSWD.encode(),
        "group": GROUP.encode(),
    }
