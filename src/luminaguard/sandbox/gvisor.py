"""The gVisor backend: each command under gVisor's kernel, not the host's.

A process in a bubblewrap sandbox makes its system calls to the host kernel
(behind a seccomp filter); under gVisor it makes them to the Sentry, a kernel
written in Go that runs as an ordinary process, so a kernel bug reachable from
inside is gVisor's, not the host's. That is the tier for untrusted work.

Everything but the start is bubblewrap's: the same ``Layout`` (what the
sandbox sees), the same warm pool, previews, commits, limits, cgroup and
egress proxy. ``GvisorSpawn`` turns a layout into an OCI bundle (a root of
mount points, ``config.json``) and starts ``runsc run`` on it:

- **As an unprivileged host user.** runsc runs ``--rootless``: started as
  ``hostuser.HOST_ID`` when LuminaGuard is root (inside its private mount
  namespace, where the workspace is id-mapped to that user), otherwise as the
  person. Inside, the command is gVisor's uid 0 with no capabilities: the
  workspace is its own, host files are "nobody"'s.
- **No network** but gVisor's own loopback (``--network=none``); an
  allow-list goes through the host-side egress proxy by the same bridge as
  bubblewrap's, over a Unix socket (``--host-uds=open``, only then).
- **The same seccomp filter**, in the OCI form, loaded by gVisor itself
  (``--oci-seccomp``), so a refused call fails the same way on both backends.
- **Limits:** address space, processes, file size and open files as rlimits
  that gVisor enforces; the cgroup runsc starts in bounds memory and host
  tasks with gVisor's own share on top; CPU time by a host-side watch
  (``CpuWatch``: gVisor does not enforce RLIMIT_CPU), for the whole sandbox.
- **Previews:** gVisor cannot make an overlay of a host directory, so the
  copy-on-write layer is a host overlayfs in the private mount namespace
  (``hostuser.Namespace.overlay``), bound in read-write: what the command
  writes lands in the preview's upper directory, as with bubblewrap, and the
  effects are read from there. That needs root; without it a preview raises.

runsc's own start costs about 0.2-0.3 s: the warm pool hides it for the
common case (read-only, offline commands).
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from luminaguard.config import SandboxSettings
from luminaguard.core.paths import SANDBOX_ROOT
from luminaguard.errors import ConfigError, SandboxUnavailable
from luminaguard.sandbox import hostuser, seccomp
from luminaguard.sandbox.bwrap import BwrapSandbox
from luminaguard.sandbox.cgroups import Cgroup
from luminaguard.sandbox.network import NetworkMode
from luminaguard.sandbox.process import joining, spawn_limited
from luminaguard.sandbox.profile import (
    GROUP,
    HELPER_DIR,
    PASSWD,
    PROXY_DIR,
    SANDBOX_ENV,
    Layout,
    etc_entries,
    helpers_dir,
    sandbox_command,
    sandbox_env,
    system_links,
)
from luminaguard.sandbox.selftest import Gate, self_test
from luminaguard.sandbox.spawn import FdMode, Spawn

INSTALL_HINT = (
    "install gVisor's runsc (Debian: `apt-get install -t bookworm-backports runsc`, "
    "or https://gvisor.dev/docs/user_guide/install/)"
)
RUNSC_TASKS = 160
HOST_TASKS_PER_PROCESS = 8
RUNSC_MEMORY_MB = 128
"""gVisor's own share of a sandbox's cgroup, above what the command may use."""
RUNSC_ENV = {"PATH": SANDBOX_ENV["PATH"]}
"""runsc's own environment: the container's is in its bundle."""


@functools.cache
def find_runsc() -> str:
    found = shutil.which("runsc")
    if found is None:
        raise SandboxUnavailable(f"the gvisor backend needs runsc: {INSTALL_HINT}")
    return found


@functools.cache
def runsc_version() -> str:
    out = subprocess.run(
        [find_runsc(), "--version"], capture_output=True, encoding="utf-8", check=False
    )
    match = re.search(r"runsc version (\S+)", out.stdout)
    return match.group(1) if match else "unknown"


@functools.cache
def platform() -> str:
    """runsc's default platform: systrap in 2023 and later (much faster), else ptrace."""
    out = subprocess.run(
        [find_runsc(), "flags"], capture_output=True, encoding="utf-8", check=False
    )
    match = re.search(r'-platform string\n.*?\(default "(\w+)"\)', out.stdout + out.stderr, re.S)
    return match.group(1) if match else "ptrace"


def runsc_flags(layout: Layout, state: Path) -> list[str]:
    flags = [
        f"--root={state}",
        "--rootless",
        f"--platform={platform()}",
        "--network=none",
        # runsc starts inside our cgroup (``spawn_limited``) instead.
        "--ignore-cgroups",
        # The root is read-only and holds only mount points.
        "--overlay2=none",
        "--oci-seccomp",
    ]
    if layout.network.proxied:
        # The bridge reaches the host-side proxy through its Unix socket.
        flags.append("--host-uds=open")
    return flags


def _refuse_host(mode: NetworkMode) -> None:
    if mode.kind == "host":
        raise ConfigError("the gvisor backend has no `host` network mode: use allow:HOST[,HOST...]")


class GvisorSpawn(Spawn):
    """One gVisor sandbox about to start: its bundle, cgroup and proxy directory."""

    launches = False  # runsc starts by spawn_limited, in a cgroup sized for gVisor too

    _overlay: Path | None = None

    @staticmethod
    def gate() -> Gate:
        return GATE

    @staticmethod
    def cgroup_for(settings: SandboxSettings) -> Cgroup:
        # The cgroup holds gVisor itself too: about 80 host threads of its own,
        # and host stubs for the sandbox's processes (measured: ~6 per process
        # under systrap). The sandbox's own count is its RLIMIT_NPROC, which
        # gVisor enforces; the cgroup only bounds what gVisor makes of it.
        return Cgroup(
            (settings.memory_mb + RUNSC_MEMORY_MB) * 1024 * 1024,
            RUNSC_TASKS + HOST_TASKS_PER_PROCESS * settings.pids_max,
        )

    def _build(self, command: Sequence[str], fds: FdMode) -> None:
        _refuse_host(self.layout.network)
        layout, prefix = hostuser.adapt(self.layout)
        source = layout.workspace
        if layout.workspace_mode == "overlay":
            ns = hostuser.namespace()
            if ns is None or not prefix:
                raise SandboxUnavailable(
                    "a gvisor preview needs LuminaGuard to run as root, with id-mapped "
                    "mounts (`luminaguard doctor`); use the bwrap backend for previews"
                )
            assert layout.upper is not None and layout.work is not None
            self._overlay = source = ns.overlay(layout.workspace, layout.upper, layout.work)
        bundle = self._private_dir()
        state = bundle / "state"
        state.mkdir()
        config = bundle / "config.json"
        # What is a file is seen on the host paths: staged ones exist only in our namespace.
        files = {inside for host, inside in self.layout.ro_binds if not os.path.isdir(host)}
        spec = oci_spec(layout, self.settings, command, source, bundle / "rootfs", files)
        config.write_text(json.dumps(spec), encoding="utf-8")
        config.chmod(0o600)
        if prefix:
            # runsc reads its bundle and keeps its state as the unprivileged user.
            for path in (bundle, state, config):
                os.chown(path, hostuser.HOST_ID, hostuser.HOST_ID)
        runsc = [
            find_runsc(),
            *runsc_flags(layout, state),
            "run",
            f"--bundle={bundle}",
            *(f"--pass-fd={fd}:{fd}" for fd in self.pass_fds),
            f"lg-{bundle.name}",
        ]
        self.argv = [*prefix, *runsc]
        if fds == "files":
            # Started by someone else's spawner (the MCP SDK): join the cgroup first.
            self.argv = [*joining(self.cgroup.procs_files()), *self.argv]
        self.env = dict(RUNSC_ENV)
        CPU_WATCH.add(self.cgroup, self.settings.cpu_s)

    def popen(self) -> subprocess.Popen[bytes]:
        # No rlimits on runsc itself (a Go runtime reserves far more address
        # space than it uses): the command's are in the bundle.
        return spawn_limited(self.argv, env=self.env, pass_fds=self.pass_fds, cgroup=self.cgroup)

    def close(self, *, now: bool = False) -> None:
        CPU_WATCH.remove(self.cgroup)
        super().close(now=now)
        if self._overlay is not None:
            ns = hostuser.namespace()
            if ns is not None:
                ns.unmount(self._overlay)
            self._overlay = None


def oci_spec(
    layout: Layout,
    settings: SandboxSettings,
    command: Sequence[str],
    workspace: Path,
    rootfs: Path,
    files: set[str],
) -> dict[str, object]:
    """The OCI runtime spec of one sandbox; ``rootfs`` is made here, holding
    only the mount points (gVisor mounts nothing on a path that is missing):
    directories, but files for the ``files`` destinations and the /etc files."""
    ro = ["rbind", "ro", "nosuid", "nodev"]
    mounts: list[dict[str, object]] = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "mode=755"],
        },
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]},
        {"destination": "/usr", "type": "bind", "source": "/usr", "options": ro},
    ]
    files = files | {path for path, is_dir in etc_entries() if not is_dir}
    mounts += [
        {"destination": path, "type": "bind", "source": path, "options": ro}
        for path, _is_dir in etc_entries()
    ]
    mounts.append(
        {
            "destination": HELPER_DIR,
            "type": "bind",
            "source": layout.helpers or helpers_dir(),
            "options": ro,
        }
    )
    mounts += [
        {"destination": inside, "type": "bind", "source": host, "options": ro}
        for host, inside in layout.ro_binds
    ]
    writable = layout.workspace_mode != "ro"
    mounts.append(
        {
            "destination": str(SANDBOX_ROOT),
            "type": "bind",
            "source": str(workspace),
            "options": ["rbind", "rw" if writable else "ro", "nosuid", "nodev"],
        }
    )
    if layout.proxy_dir is not None:
        mounts.append(
            {
                "destination": PROXY_DIR,
                "type": "bind",
                "source": str(layout.proxy_dir),
                "options": ["rbind", "rw"],
            }
        )
    _make_root(rootfs, mounts, files)
    mib = 1024 * 1024
    rlimits = {
        "RLIMIT_AS": settings.memory_mb * mib,
        "RLIMIT_CPU": settings.cpu_s,
        "RLIMIT_FSIZE": settings.max_file_mb * mib,
        "RLIMIT_NOFILE": settings.max_open_files,
        "RLIMIT_NPROC": settings.pids_max,
        "RLIMIT_CORE": 0,
    }
    no_caps: dict[str, list[str]] = {
        kind: [] for kind in ("bounding", "effective", "inheritable", "permitted", "ambient")
    }
    return {
        "ociVersion": "1.0.2",
        "process": {
            "user": {"uid": 0, "gid": 0},
            "args": sandbox_command(layout, command),
            "env": [f"{k}={v}" for k, v in sandbox_env(layout).items()],
            "cwd": str(SANDBOX_ROOT),
            "capabilities": no_caps,
            "noNewPrivileges": True,
            "rlimits": [{"type": k, "hard": v, "soft": v} for k, v in rlimits.items()],
        },
        "root": {"path": str(rootfs), "readonly": True},
        "hostname": "sandbox",
        "mounts": mounts,
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "seccomp": seccomp.oci_profile(),
        },
    }


def _make_root(rootfs: Path, mounts: list[dict[str, object]], files: set[str]) -> None:
    rootfs.mkdir()
    for name, target in system_links():
        (rootfs / name).symlink_to(target)
    etc = rootfs / "etc"
    etc.mkdir()
    # Written into the root, not bound: the same accounts as bubblewrap's.
    (etc / "passwd").write_text(PASSWD, encoding="utf-8")
    (etc / "group").write_text(GROUP, encoding="utf-8")
    for mount in mounts:
        point = rootfs / str(mount["destination"]).lstrip("/")
        point.parent.mkdir(parents=True, exist_ok=True)
        if mount["destination"] in files:
            point.touch(exist_ok=True)
        else:
            point.mkdir(exist_ok=True)
    for path in (rootfs, *rootfs.rglob("*")):
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)


class CpuWatch:
    """gVisor keeps RLIMIT_CPU but does not enforce it, so the CPU limit is
    watched from the host: a sandbox whose processes (gVisor's own included)
    have used more than ``cpu_s`` CPU seconds in all is killed, as the
    kernel kills a bubblewrap process past its RLIMIT_CPU."""

    INTERVAL_S = 0.2

    def __init__(self) -> None:
        self._limits: dict[Cgroup, float] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._tick = os.sysconf("SC_CLK_TCK")

    def add(self, cgroup: Cgroup, cpu_s: float) -> None:
        with self._lock:
            self._limits[cgroup] = cpu_s
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="lg-gvisor-cpu", daemon=True)
                self._thread.start()

    def remove(self, cgroup: Cgroup) -> None:
        with self._lock:
            self._limits.pop(cgroup, None)

    def used_s(self, cgroup: Cgroup) -> float:
        """CPU seconds of everything in ``cgroup``, reaped children included."""
        ticks = 0
        for pid in cgroup.pids():
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            # utime stime cutime cstime, after the ")" that ends the name.
            ticks += sum(int(f) for f in stat.rpartition(")")[2].split()[11:15])
        return ticks / self._tick

    def _run(self) -> None:
        while True:
            time.sleep(self.INTERVAL_S)
            with self._lock:
                watched = list(self._limits.items())
            for cgroup, limit in watched:
                if self.used_s(cgroup) > limit:
                    cgroup.kill()


CPU_WATCH = CpuWatch()


def _binaries() -> list[str]:
    nsenter = shutil.which("nsenter")
    return [find_runsc(), *([nsenter] if nsenter else [])]


GATE = Gate(lambda settings: self_test(settings, GvisorSpawn), name="gvisor", binaries=_binaries)
"""The gVisor backend's gate: the same self-test, run in a gVisor sandbox."""


class GvisorSandbox(BwrapSandbox):
    """Runs each command in a fresh gVisor sandbox over one workspace."""

    name = "gvisor"
    spawner = GvisorSpawn

    def __init__(self, workspace: Path, settings: SandboxSettings, **options: object) -> None:
        # Refused here already, before bubblewrap's warning about `host` would print.
        network = options.get("network")
        _refuse_host(
            network if isinstance(network, NetworkMode) else NetworkMode.parse(settings.network)
        )
        super().__init__(workspace, settings, **options)  # type: ignore[arg-type]

    @staticmethod
    def check_available() -> None:
        find_runsc()
