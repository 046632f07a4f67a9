"""The escape and abuse suite: each attack against a real sandbox.

Every attack is harmless to the machine even if the sandbox were broken:
targets are unique temp paths and processes this test owns; nothing kills
by -1, nothing deletes outside temp dirs, nothing talks to any address but
this machine's loopback.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from luminaguard.config import SandboxSettings
from luminaguard.protocols import ExecResult
from luminaguard.sandbox import cgroups, open_sandbox
from luminaguard.sandbox.profile import ETC_ALLOW


@dataclass
class Box:
    """Commands in a fresh sandbox of one backend over one workspace."""

    backend: str
    workspace: Path

    def run(self, argv: list[str], **settings: object) -> ExecResult:
        sandbox = open_sandbox(
            self.backend,
            self.workspace,
            SandboxSettings(**{"timeout_s": 30, "pool_size": 0, **settings}),  # type: ignore[arg-type]
        )
        try:
            return asyncio.run(sandbox.exec(argv))
        finally:
            sandbox.close()  # type: ignore[attr-defined]

    def sh(self, script: str, **settings: object) -> ExecResult:
        return self.run(["/bin/bash", "-c", script], **settings)

    def py(self, code: str, **settings: object) -> ExecResult:
        return self.run(["/usr/bin/python3", "-I", "-c", code], **settings)


@pytest.fixture
def box(sandbox_backend: str, workspace: Path) -> Box:
    return Box(sandbox_backend, workspace)


SYSCALL_PROBE = """
import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def call(nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_ulong(a) for a in args])
    return 0 if r >= 0 else ctypes.get_errno()
results = {
    "ptrace": call(101, 16, 1),               # PTRACE_ATTACH to pid 1
    "process_vm_readv": call(310, 1, 0, 0, 0, 0, 0),
    "mount": call(165, 0, 0, 0, 0, 0),
    "umount2": call(166, 0, 0),
    "pivot_root": call(155, 0, 0),
    "fsopen": call(430, 0, 0),
    "open_tree": call(428, 0, 0, 0),
    "unshare_user": call(272, 0x10000000),
    "unshare_net": call(272, 0x40000000),
    "setns": call(308, 0, 0),
    "clone_newuser": call(56, 0x10000000 | 17, 0, 0, 0, 0),
    "clone3": call(435, 0, 0),
    "keyctl": call(250, 0, 0, 0, 0, 0),
    "add_key": call(248, 0, 0, 0, 0, 0),
    "bpf": call(321, 0, 0, 0),
    "userfaultfd": call(323, 0),
    "io_uring_setup": call(425, 1, 0),
    "perf_event_open": call(298, 0, 0, 0, 0, 0),
    "kexec_load": call(246, 0, 0, 0, 0),
    "init_module": call(175, 0, 0, 0),
    "open_by_handle_at": call(304, 0, 0, 0),
    "x32_getpid": call(0x40000000 | 39),
    "tiocsti": call(16, 0, 0x5412, 0),
    "tiocsti_high_bits": call(16, 0, 0x5412 | (1 << 32), 0),
    "tioclinux": call(16, 0, 0x541C, 0),
    "af_packet": call(41, 17, 3, 0),
    "raw_inet": call(41, 2, 3, 1),
    "raw_inet6": call(41, 10, 3, 58),
    "getpid": call(39),
    "plain_tcp_socket": call(41, 2, 1, 0),
    "unix_socket": call(41, 1, 1, 0),
}
print(json.dumps(results))
"""

EPERM, EINVAL, ENOSYS = 1, 22, 38


def test_the_seccomp_filter_refuses_dangerous_syscalls_and_allows_ordinary_ones(box: Box) -> None:
    import json

    r = box.py(SYSCALL_PROBE)
    assert r.exit_code == 0, r.stderr
    got = json.loads(r.stdout)
    for name in got:
        if name in ("getpid", "plain_tcp_socket", "unix_socket"):
            assert got[name] == 0, name
        elif name == "clone3" and box.backend != "gvisor":
            # Its flags are out of the filter's reach: ENOSYS, so libc uses clone
            # (the micro-VM's guest runs the very same filter).
            assert got[name] == ENOSYS
        elif name == "clone3":
            # gVisor's own clone3 (its namespaces are the Sentry's, not the
            # host's), refusing the NULL arguments.
            assert got[name] == EINVAL
        elif name == "x32_getpid" and box.backend == "gvisor":
            assert got[name] == ENOSYS  # gVisor has no x32 ABI at all
        else:
            assert got[name] == EPERM, f"{name} returned errno {got[name]}"


def test_nested_namespaces_mounts_and_chroot_fail_from_the_shell(box: Box) -> None:
    r = box.sh(
        "unshare -U true && echo UNSHARED; mkdir -p /tmp/m && mount -t tmpfs none /tmp/m && echo MOUNTED; chroot / true && echo CHROOTED; true",
    )
    for word in ("UNSHARED", "MOUNTED", "CHROOTED"):
        assert word not in r.stdout


def test_writes_through_a_symlink_to_the_host_do_not_land(box: Box, tmp_path: Path) -> None:
    outside = tmp_path / f"target-{secrets.token_hex(4)}"
    outside.mkdir()
    os.symlink(outside, box.workspace / "link")
    os.symlink(outside / "file", box.workspace / "filelink")
    r = box.sh(
        "echo x > link/escaped; echo x > filelink; cp /etc/hostname link/ 2>/dev/null; true",
    )
    assert list(outside.iterdir()) == [], r.stderr


def test_host_files_outside_the_workspace_cannot_be_read(box: Box, tmp_path: Path) -> None:
    secret = tmp_path / "host-secret.txt"
    token = secrets.token_hex(8)
    secret.write_text(token)
    r = box.sh(f"cat {secret}; cat /etc/shadow; cat /root/.bash_history; ls /home; true")
    assert token not in r.stdout
    assert r.stdout.strip() == ""


def test_etc_holds_only_the_allow_list_and_cannot_be_changed(box: Box) -> None:
    r = box.sh(
        "ls -A /etc; for f in /etc/hosts /etc/ld.so.cache /etc/passwd; do "
        "echo x >> $f && echo WROTE $f; done; touch /etc/new && echo MADE; "
        "mv /etc/hosts /etc/h2 && echo MOVED; rm -f /etc/passwd && echo REMOVED; true"
    )
    assert not any(word in r.stdout for word in ("WROTE", "MADE", "MOVED", "REMOVED")), r.stdout
    listed = set(r.stdout.split())
    assert {"passwd", "group"} <= listed
    if box.backend != "microvm":  # a guest has its own /etc; only the host's is filtered
        assert listed <= {*ETC_ALLOW, "passwd", "group"}, listed - {*ETC_ALLOW, "passwd", "group"}
    assert "sandbox:x:1000" in box.sh("cat /etc/passwd").stdout
    # Read-only mounts, not only files the sandbox user does not own.
    mounts = [line.split() for line in box.sh("cat /proc/self/mountinfo").stdout.splitlines()]
    under_etc = [m for m in mounts if m[4] == "/etc" or m[4].startswith("/etc/")]
    if box.backend == "bwrap":
        assert under_etc, "no mount at /etc"
    writable = [m[4] for m in under_etc if "ro" not in m[5].split(",")]
    assert not writable, writable


def test_host_processes_cannot_be_seen_or_killed(box: Box) -> None:
    victim = subprocess.Popen(["sleep", "300"])
    try:
        r = box.sh(f"kill -9 {victim.pid} 2>&1; ls /proc | grep -x {victim.pid}; true")
        assert victim.poll() is None, "the sandbox killed a host process"
        assert str(victim.pid) not in r.stdout.split()
    finally:
        victim.kill()
        victim.wait()


def test_the_bounding_set_is_empty_and_no_new_privs_is_set(box: Box) -> None:
    # no_new_privs asked of the kernel itself: gVisor's /proc does not show it.
    r = box.sh(
        "grep -E '^(CapBnd|Seccomp):' /proc/self/status; python3 -I -S -c "
        "\"import ctypes; print('NoNewPrivs:\\t%d' % ctypes.CDLL(None).prctl(39, 0, 0, 0, 0))\""
    )
    status = dict(line.split(":\t") for line in r.stdout.strip().splitlines())
    assert status == {"CapBnd": "0000000000000000", "NoNewPrivs": "1", "Seccomp": "2"}


def test_proc_and_sys_cannot_be_written(box: Box) -> None:
    r = box.sh(
        "echo 1 > /proc/sys/kernel/sysrq && echo WROTE-PROC; echo x > /sys/kernel/uevent_helper && echo WROTE-SYS; ls /sys 2>&1 | head -1; true",
    )
    assert "WROTE" not in r.stdout


def test_a_memory_bomb_is_stopped_by_the_memory_limit(box: Box) -> None:
    # Above the limit, yet below what a micro-VM guest has (512 MiB): the limit
    # itself must stop it, not the machine running out.
    r = box.py("x = bytearray(384 * 1024 * 1024); print('ALLOCATED')", memory_mb=256)
    assert "ALLOCATED" not in r.stdout
    assert "MemoryError" in r.stderr


FORK_BOMB = """
import os, time
children, failed = [], 0
for _ in range(300):
    try:
        pid = os.fork()
    except OSError:
        failed += 1
        continue
    if pid == 0:
        time.sleep(3)
        os._exit(0)
    children.append(pid)
print(len(children), failed)
"""


@pytest.mark.skipif(
    cgroups.support().mechanism == "rlimits",
    reason=f"no process-count limit here: {cgroups.support().reason}",
)
def test_a_fork_bomb_is_stopped_by_the_process_limit(box: Box) -> None:
    r = box.py(FORK_BOMB, pids_max=40)
    started, failed = map(int, r.stdout.split())
    assert started < 40 and failed > 0


def test_cpu_time_is_limited(box: Box) -> None:
    r = box.py("while True: pass", cpu_s=1, timeout_s=20)
    assert not r.timed_out
    # Soft and hard limit are equal, so the kernel may send SIGKILL instead of SIGXCPU.
    assert r.exit_code in (128 + 9, 128 + 24)


def test_the_network_is_only_the_sandbox_loopback(box: Box) -> None:
    r = box.sh("ls /sys/class/net 2>/dev/null || ip -o link 2>/dev/null || cat /proc/net/dev")
    assert "eth" not in r.stdout and "ens" not in r.stdout and "veth" not in r.stdout


def test_the_terminal_cannot_be_reached(box: Box) -> None:
    r = box.sh("echo x > /dev/tty && echo REACHED-TTY; true")
    assert "REACHED-TTY" not in r.stdout


EVERY_DENIED = """
import ctypes, json, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
out = {}
for name, nr in json.loads(sys.argv[1]).items():
    ctypes.set_errno(0)
    # Zero arguments: harmless whatever the call does (most fail on a NULL pointer).
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_ulong(0)] * 6)
    out[name] = 0 if r >= 0 else ctypes.get_errno()
print(json.dumps(out))
"""


def test_every_syscall_the_filter_lists_is_refused_inside_a_sandbox(box: Box) -> None:
    import json

    from luminaguard.sandbox.seccomp import DENY

    numbers = {name: nr for name, (nr, _why) in DENY.items()}
    r = box.run(["/usr/bin/python3", "-I", "-c", EVERY_DENIED, json.dumps(numbers)])
    assert r.exit_code == 0, r.stderr
    got = json.loads(r.stdout)
    assert set(got) == set(DENY)
    # gVisor has no code at all behind some calls (ENOSYS): refused before any filter.
    refusals = {EPERM, ENOSYS} if box.backend == "gvisor" else {EPERM}
    wrong = {name: err for name, err in got.items() if err not in refusals}
    assert not wrong, f"not refused with EPERM by the filter: {wrong}"


def _run_filter(nr: int, args: tuple[int, ...] = (), arch: int | None = None) -> int:
    """Classic BPF, interpreted over a struct seccomp_data: what the filter answers."""
    import struct

    from luminaguard.sandbox import seccomp as sc

    padded = (list(args) + [0] * 6)[:6]
    data = struct.pack("<iIQ6Q", nr, sc.AUDIT_ARCH_X86_64 if arch is None else arch, 0, *padded)
    prog, pc, acc = sc.instructions(), 0, 0
    while True:
        code, jt, jf, k = prog[pc]
        pc += 1
        if code == sc.LD_W_ABS:
            acc = struct.unpack_from("<I", data, k)[0]
        elif code == sc.AND_K:
            acc &= k
        elif code in (sc.JEQ_K, sc.JGE_K, sc.JSET_K):
            hit = {sc.JEQ_K: acc == k, sc.JGE_K: acc >= k, sc.JSET_K: bool(acc & k)}[code]
            pc += jt if hit else jf
        elif code == sc.RET_K:
            return k
        else:
            raise AssertionError(f"unknown opcode {code:#x}")


def test_the_filter_program_answers_every_listed_call_and_allows_the_rest() -> None:
    from luminaguard.sandbox import seccomp as sc

    for name, (nr, _why) in sc.DENY.items():
        assert _run_filter(nr) == sc.RET_EPERM, name
        assert _run_filter(nr | sc.X32_SYSCALL_BIT) == sc.RET_EPERM, f"x32 {name}"
    for nr in (0, 1, 2, 39, 59, 60, 231, 257):  # read write open getpid execve exit ...
        assert _run_filter(nr) == sc.RET_ALLOW, nr
    assert _run_filter(39, arch=0x40000003) == sc.RET_KILL_PROCESS  # i386
    assert _run_filter(sc.NR_CLONE3) == sc.RET_ENOSYS
    assert _run_filter(sc.NR_CLONE, (0x10000000 | 17,)) == sc.RET_EPERM
    assert _run_filter(sc.NR_CLONE, (17,)) == sc.RET_ALLOW
    for request in sc.DENIED_IOCTLS:
        assert _run_filter(sc.NR_IOCTL, (0, request | (1 << 32))) == sc.RET_EPERM
    assert _run_filter(sc.NR_IOCTL, (0, 0x5401)) == sc.RET_ALLOW  # TCGETS
    assert _run_filter(sc.NR_SOCKET, (sc.AF_PACKET, 2)) == sc.RET_EPERM
    assert _run_filter(sc.NR_SOCKET, (sc.AF_INET6, sc.SOCK_RAW | 0x80000)) == sc.RET_EPERM
    assert _run_filter(sc.NR_SOCKET, (sc.AF_INET, 1)) == sc.RET_ALLOW
