"""The seccomp filter every sandboxed process runs under, assembled as classic BPF.

Assembled here rather than through libseccomp so that it needs no native
library and every instruction can be read. bubblewrap loads it (``--seccomp
FD``) just before it executes the command, so bwrap's own setup is not
affected. Denied calls fail with EPERM, as if the capability were missing;
the process is killed only for a foreign architecture, because a filter that
cannot read the syscall number must not guess.

Only x86_64 is supported. On other machines ``filter_program()`` raises and
the sandbox refuses to start (``doctor`` says why) rather than running
without the filter.
"""

from __future__ import annotations

import errno
import functools
import platform
import struct

from luminaguard.errors import SandboxUnavailable

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000

# Every blocked call, with the reason it is blocked.
DENY: dict[str, tuple[int, str]] = {
    "ptrace": (101, "inspect or control another process: a path to steal secrets or escape"),
    "process_vm_readv": (310, "read another process's memory"),
    "process_vm_writev": (311, "write another process's memory"),
    "kcmp": (312, "compare kernel objects of other processes: an information leak"),
    "pidfd_getfd": (438, "steal a file descriptor from another process"),
    "mount": (165, "mounting could hide or replace what the sandbox exposes"),
    "umount2": (166, "unmounting could reveal what the sandbox hides"),
    "pivot_root": (155, "changing the root file system"),
    "chroot": (161, "changing the root; combined with fds, a classic escape"),
    "open_tree": (428, "new mount API"),
    "open_tree_attr": (467, "new mount API"),
    "move_mount": (429, "new mount API"),
    "fsopen": (430, "new mount API"),
    "fsconfig": (431, "new mount API"),
    "fsmount": (432, "new mount API"),
    "fspick": (433, "new mount API"),
    "mount_setattr": (442, "new mount API"),
    "unshare": (272, "new namespaces are the usual first step of kernel exploits"),
    "setns": (308, "joining other namespaces"),
    "keyctl": (250, "the kernel keyring is shared with the host and has had many bugs"),
    "add_key": (248, "kernel keyring"),
    "request_key": (249, "kernel keyring"),
    "bpf": (321, "loading BPF programs is a large kernel attack surface"),
    "userfaultfd": (323, "makes kernel race conditions easy to win"),
    "io_uring_setup": (425, "io_uring bypasses this filter and has had many bugs"),
    "io_uring_enter": (426, "io_uring"),
    "io_uring_register": (427, "io_uring"),
    "perf_event_open": (298, "performance counters leak information and have had many bugs"),
    "kexec_load": (246, "loading a new kernel"),
    "kexec_file_load": (320, "loading a new kernel"),
    "init_module": (175, "loading kernel modules"),
    "finit_module": (313, "loading kernel modules"),
    "delete_module": (176, "unloading kernel modules"),
    "name_to_handle_at": (303, "file handles can open files outside the mount namespace"),
    "open_by_handle_at": (
        304,
        "file handles can open files outside the mount namespace (the 'shocker' escape)",
    ),
    "acct": (163, "process accounting is host-wide"),
    "swapon": (167, "host swap"),
    "swapoff": (168, "host swap"),
    "reboot": (169, "rebooting the host"),
    "sethostname": (170, "host identity"),
    "setdomainname": (171, "host identity"),
    "iopl": (172, "raw I/O port access"),
    "ioperm": (173, "raw I/O port access"),
    "quotactl": (179, "host disk quotas"),
    "quotactl_fd": (443, "host disk quotas"),
    "syslog": (103, "the kernel log leaks addresses"),
    "uselib": (134, "obsolete, only useful to exploits"),
    "vhangup": (153, "hang up the host terminal"),
    "settimeofday": (164, "the host clock"),
    "clock_settime": (227, "the host clock"),
    "clock_adjtime": (305, "the host clock"),
    "adjtimex": (159, "the host clock"),
    "fanotify_init": (300, "watch file access across the system"),
    "lookup_dcookie": (212, "kernel profiling internals"),
    "move_pages": (279, "NUMA page moves on other processes"),
    "migrate_pages": (256, "NUMA page moves on other processes"),
}

NR_CLONE, NR_CLONE3, NR_IOCTL, NR_SOCKET = 56, 435, 16, 41

# clone() flags that create namespaces. clone3 passes its flags in memory the
# filter cannot read, so clone3 fails with ENOSYS and libc falls back to clone.
CLONE_NS_FLAGS = (
    0x00020000
    | 0x02000000
    | 0x04000000
    | 0x08000000
    | 0x10000000
    | 0x20000000
    | 0x40000000
    | 0x00000080
)

# Terminal ioctls that inject input or poke the console. Only the low 32 bits
# of the request are compared: the kernel ignores the upper half, so a request
# with junk in it would otherwise slip past.
DENIED_IOCTLS = {
    0x5412: "TIOCSTI: push keystrokes into the terminal",
    0x541C: "TIOCLINUX: console control and selection injection",
}

AF_INET, AF_INET6, AF_PACKET = 2, 10, 17
SOCK_RAW, SOCK_PACKET, SOCK_TYPE_MASK = 3, 10, 0xF

# Classic BPF opcodes.
LD_W_ABS = 0x20
JEQ_K = 0x15
JGE_K = 0x35
JSET_K = 0x45
AND_K = 0x54
RET_K = 0x06

RET_ALLOW = 0x7FFF0000
RET_KILL_PROCESS = 0x80000000
RET_EPERM = 0x00050000 | errno.EPERM
RET_ENOSYS = 0x00050000 | errno.ENOSYS

OFF_NR, OFF_ARCH = 0, 4


def _arg(n: int) -> int:
    """Offset of the low 32 bits of argument n in struct seccomp_data (little endian)."""
    return 16 + 8 * n


Insn = tuple[int, int, int, int]


def _ins(code: int, k: int, jt: int = 0, jf: int = 0) -> Insn:
    return (code, jt, jf, k)


def instructions() -> list[Insn]:
    prog: list[Insn] = [
        _ins(LD_W_ABS, OFF_ARCH),
        _ins(JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        _ins(RET_K, RET_KILL_PROCESS),
        _ins(LD_W_ABS, OFF_NR),
        # The x32 ABI reaches the same kernel code under other numbers.
        _ins(JGE_K, X32_SYSCALL_BIT, 0, 1),
        _ins(RET_K, RET_EPERM),
    ]
    for nr, _why in DENY.values():
        prog += [_ins(JEQ_K, nr, 0, 1), _ins(RET_K, RET_EPERM)]
    prog += [_ins(JEQ_K, NR_CLONE3, 0, 1), _ins(RET_K, RET_ENOSYS)]
    # clone: refuse namespace flags.
    prog += [
        _ins(JEQ_K, NR_CLONE, 0, 4),
        _ins(LD_W_ABS, _arg(0)),
        _ins(JSET_K, CLONE_NS_FLAGS, 0, 1),
        _ins(RET_K, RET_EPERM),
        _ins(RET_K, RET_ALLOW),
    ]
    # ioctl: refuse the terminal-injection requests.
    prog += [_ins(JEQ_K, NR_IOCTL, 0, 2 + 2 * len(DENIED_IOCTLS)), _ins(LD_W_ABS, _arg(1))]
    for request in DENIED_IOCTLS:
        prog += [_ins(JEQ_K, request, 0, 1), _ins(RET_K, RET_EPERM)]
    prog += [_ins(RET_K, RET_ALLOW)]
    # socket: no packet sockets, no raw IP sockets.
    prog += [
        _ins(JEQ_K, NR_SOCKET, 0, 12),
        _ins(LD_W_ABS, _arg(0)),
        _ins(JEQ_K, AF_PACKET, 0, 1),
        _ins(RET_K, RET_EPERM),
        _ins(JEQ_K, AF_INET, 1, 0),
        _ins(JEQ_K, AF_INET6, 0, 6),
        _ins(LD_W_ABS, _arg(1)),
        _ins(AND_K, SOCK_TYPE_MASK),
        _ins(JEQ_K, SOCK_RAW, 0, 1),
        _ins(RET_K, RET_EPERM),
        _ins(JEQ_K, SOCK_PACKET, 0, 1),
        _ins(RET_K, RET_EPERM),
        _ins(RET_K, RET_ALLOW),
    ]
    prog += [_ins(RET_K, RET_ALLOW)]
    return prog


def supported() -> str | None:
    """``None`` when the filter can be used here, else the reason it cannot."""
    machine = platform.machine()
    if machine not in ("x86_64", "AMD64"):
        return f"the seccomp filter is built for x86_64, this machine is {machine}"
    return None


@functools.cache
def filter_program() -> bytes:
    """The filter as bwrap's ``--seccomp FD`` expects it: an array of sock_filter."""
    reason = supported()
    if reason:
        raise SandboxUnavailable(reason)
    return b"".join(struct.pack("<HBBI", code, jt, jf, k) for code, jt, jf, k in instructions())


@functools.cache
def oci_profile() -> dict[str, object]:
    """The same filter in the OCI runtime spec's form, for a runtime that loads
    it itself (gVisor's ``--oci-seccomp``): the same calls refused (EPERM),
    the same argument checks; clone3 is left to the runtime (below). Built
    once per process; callers only read it."""
    reason = supported()
    if reason:
        raise SandboxUnavailable(reason)
    eperm = {"action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM}

    def masked(index: int, mask: int, value: int) -> dict[str, object]:
        return {"index": index, "value": mask, "valueTwo": value, "op": "SCMP_CMP_MASKED_EQ"}

    # No clone3 rule: gVisor answers every refused call with EPERM (errnoRet
    # is not honoured), and libc falls back to clone only on ENOSYS.
    rules: list[dict[str, object]] = [{"names": list(DENY), **eperm}]
    # One rule per namespace flag: the conditions of one rule must all hold.
    bits = [1 << i for i in range(32) if CLONE_NS_FLAGS & (1 << i)]
    rules += [{"names": ["clone"], **eperm, "args": [masked(0, bit, bit)]} for bit in bits]
    rules += [
        {"names": ["ioctl"], **eperm, "args": [masked(1, 0xFFFF_FFFF, request)]}
        for request in DENIED_IOCTLS
    ]
    rules.append({"names": ["socket"], **eperm, "args": [masked(0, 0xFFFF_FFFF, AF_PACKET)]})
    rules += [
        {
            "names": ["socket"],
            **eperm,
            "args": [masked(0, 0xFFFF_FFFF, family), masked(1, SOCK_TYPE_MASK, kind)],
        }
        for family in (AF_INET, AF_INET6)
        for kind in (SOCK_RAW, SOCK_PACKET)
    ]
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": rules,
    }
