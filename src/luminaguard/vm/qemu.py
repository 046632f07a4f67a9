"""Booting the micro-VM under QEMU, its guest agent, snapshots and clones.

One ``Vm`` is one QEMU process on QEMU's ``microvm`` machine (virtio-mmio
devices, no PCI, no firmware: the kernel is entered through PVH), with:

- the guest agent on a virtio-serial port, reached through a Unix socket
  (``Agent``: one framed command at a time, output streamed back);
- QMP on another Unix socket, for ``stop``/``cont`` and migration;
- guest RAM in a file (``memory-backend-file``), so a snapshot is the RAM
  file plus a small device-state file written with the ``x-ignore-shared``
  capability (the RAM is not copied), and a clone maps that RAM file
  copy-on-write (``share=off``): clones share the pages they only read.

QEMU runs confined: its own ``-sandbox`` seccomp filter (no spawning, no
privilege changes), no network device, no disk, and, when LuminaGuard is
root, as the unprivileged host user of ``sandbox/hostuser.py`` (``-runas``,
once it has opened its files).

Which accelerator: KVM where the host has hardware virtualisation and a
timed probe boot reaches the agent (cached per boot and image); TCG (software
emulation) otherwise, saying why. Under PVM (a paravirtual /dev/kvm that only
boots guests built for it) an ordinary guest hangs, so it counts as no KVM.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from luminaguard.errors import AgentTimeout, SandboxUnavailable, VmError
from luminaguard.sandbox.hostuser import HOST_ID
from luminaguard.vm.image import Image

# Under TCG the kernel of the day stalls calibrating its clock unless told the
# TSC is fine; the crypto self-tests cost up to a CPU-second.
KERNEL_ARGS = (
    "console=ttyS0 quiet panic=-1 reboot=t cryptomgr.notests "
    "tsc_early_khz=2000000 lpj=4000000 no_timer_check tsc=reliable"
)
BOOT_TIMEOUT_S = 60.0
KVM_PROBE_TIMEOUT_S = 10.0
KILL_GRACE_S = 5.0
GUEST_MB = 512
"""Guest RAM: the workspace copy and a preview's writes live in it (tmpfs)."""
# QEMU's own seccomp filter: no new programs, no privilege changes.
QEMU_SANDBOX = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"


def find_qemu() -> str:
    found = shutil.which("qemu-system-x86_64")
    if found is None:
        raise SandboxUnavailable(
            "the microvm backend needs QEMU: `apt-get install qemu-system-x86` (Debian)"
        )
    return found


def kvm_kind() -> str:
    """``real`` (hardware virtualisation), ``pvm`` (a paravirtual KVM that boots
    only guests built for it: a normal kernel hangs), or ``absent``."""
    if not Path("/dev/kvm").exists():
        return "absent"
    if Path("/sys/module/kvm_pvm").exists():
        return "pvm"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "real"
    # No hardware virtualisation, yet a /dev/kvm: a paravirtual one.
    return "real" if re.search(r"\b(vmx|svm)\b", flags) else "pvm"


@dataclass(frozen=True)
class Accel:
    name: str  # "kvm" | "tcg"
    why: str


def accelerator(image: Image, data_dir: Path) -> Accel:
    """KVM when it really boots this image (a probe, cached per boot), else TCG."""
    kind = kvm_kind()
    if kind == "absent":
        return Accel("tcg", "no /dev/kvm: software emulation (TCG)")
    if kind == "pvm":
        return Accel("tcg", "/dev/kvm is PVM, which hangs an ordinary guest: TCG")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return Accel("tcg", "/dev/kvm is not read-writable by this user: TCG")
    cache = data_dir / "vm" / "kvm-probe.json"
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    key = f"{boot_id}:{image.key}"
    with contextlib.suppress(OSError, ValueError):
        known = json.loads(cache.read_text(encoding="utf-8"))
        if known.get("key") == key:
            return Accel(known["name"], known["why"])
    try:
        started = time.monotonic()
        with Vm(image, accel="kvm", boot_timeout_s=KVM_PROBE_TIMEOUT_S):
            pass
        found = Accel(
            "kvm", f"KVM: a probe boot reached the agent in {time.monotonic() - started:.2f} s"
        )
    except VmError as exc:
        found = Accel("tcg", f"KVM did not boot the guest ({exc}): TCG")
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"key": key, "name": found.name, "why": found.why}))
    return found


@dataclass
class Result:
    exit_code: int
    stdout: bytes
    stderr: bytes
    timed_out: bool = False
    """Killed (``K``) for running past its time."""


class Agent:
    """The host end of the guest agent's port (frames: see ``agent.c``)."""

    def __init__(self, path: Path, deadline: float) -> None:
        self.sock = _connect(path, deadline)
        self.sock.settimeout(None)

    def send(self, kind: str, data: bytes = b"") -> None:
        self.sock.sendall(kind.encode() + struct.pack(">I", len(data)) + data)

    def frame(self, timeout_s: float | None = None) -> tuple[str, bytes]:
        self.sock.settimeout(timeout_s)
        try:
            head = self._exactly(5)
            return chr(head[0]), self._exactly(struct.unpack(">I", head[1:])[0])
        except TimeoutError:
            raise AgentTimeout("the guest agent did not answer in time") from None
        finally:
            self.sock.settimeout(None)

    def _exactly(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise VmError("the guest agent's port closed")
            data += chunk
        return bytes(data)

    def ping(self, timeout_s: float = 10.0) -> None:
        self.send("P")
        kind, _ = self.frame(timeout_s)
        if kind != "R":
            raise VmError(f"the guest agent answered {kind!r} to a ping")

    def start(
        self,
        argv: list[str],
        *,
        options: dict[str, str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """Start a command: its stdin is ``I`` frames, its output ``O``/``E``, its end ``X``."""
        fields = [f"{k}={v}" for k, v in (options or {}).items()]
        payload = b"\0".join(
            [
                *(f.encode() for f in fields),
                b"",
                *(a.encode() for a in argv),
                b"",
                *(f"{k}={v}".encode() for k, v in (env or {}).items()),
            ]
        )
        self.send("C", payload + b"\0")

    def run(
        self,
        argv: list[str],
        *,
        stdin: bytes = b"",
        options: dict[str, str] | None = None,
        env: dict[str, str] | None = None,
        timeout_s: float = 120.0,
    ) -> Result:
        self.start(argv, options=options, env=env)
        for at in range(0, len(stdin), 65536):
            self.send("I", stdin[at : at + 65536])
        self.send("I")
        out, err = bytearray(), bytearray()
        deadline = time.monotonic() + timeout_s
        killed = False
        while True:
            try:
                kind, data = self.frame(max(0.001, deadline - time.monotonic()))
            except AgentTimeout:
                if killed:
                    raise
                # Past its time: the agent kills the command's process group.
                self.send("K")
                killed, deadline = True, time.monotonic() + KILL_GRACE_S
                continue
            if kind == "O":
                out += data
            elif kind in ("E", "F"):
                err += data
            elif kind == "X":
                return Result(struct.unpack(">I", data)[0], bytes(out), bytes(err), killed)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class Qmp:
    """QEMU's control socket: one command at a time, events skipped."""

    def __init__(self, path: Path, deadline: float) -> None:
        self.sock = _connect(path, deadline)
        self.file = self.sock.makefile("rw", encoding="utf-8")
        self.file.readline()  # the greeting
        self.command("qmp_capabilities")

    def command(self, name: str, fds: list[int] | None = None, **arguments: object) -> object:
        line = json.dumps({"execute": name, "arguments": arguments}) + "\n"
        if fds:
            socket.send_fds(self.sock, [line.encode()], fds)
        else:
            self.file.write(line)
            self.file.flush()
        while True:
            reply = json.loads(self.file.readline() or '{"error": {"desc": "QMP closed"}}')
            if "error" in reply:
                raise VmError(f"QMP {name}: {reply['error'].get('desc')}")
            if "return" in reply:
                return reply["return"]

    def status(self) -> str:
        answer = self.command("query-status")
        assert isinstance(answer, dict)
        return str(answer["status"])

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
            self.sock.close()


class Vm:
    """One QEMU process: booted from the image, or restored from a snapshot."""

    def __init__(
        self,
        image: Image,
        *,
        accel: str = "tcg",
        memory_mb: int = GUEST_MB,
        ram_file: Path | None = None,
        restore_from: Path | None = None,
        boot_timeout_s: float = BOOT_TIMEOUT_S,
    ) -> None:
        """``ram_file``: guest RAM in that file, shared (a VM to snapshot);
        ``restore_from``: a snapshot's state file, whose RAM file ``ram_file``
        is then mapped copy-on-write (a clone)."""
        self.image = image
        self.accel = accel
        self.dir = Path(tempfile.mkdtemp(prefix=VM_DIR_PREFIX))
        # Whose VM this is: a sweep after a kill -9 finds the orphans by it.
        (self.dir / "owner").write_text(str(os.getpid()))
        self.agent: Agent | None = None
        self.qmp: Qmp | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        try:
            self._start(memory_mb, ram_file, restore_from, boot_timeout_s)
        except BaseException:
            self.close()
            raise

    def _argv(self, memory_mb: int, ram_file: Path | None, restore: bool) -> list[str]:
        machine = "microvm,x-option-roms=off,rtc=off,isa-serial=on,pic=off,pit=off"
        argv = [find_qemu(), "-accel", self.accel, "-cpu", "host" if self.accel == "kvm" else "max"]
        argv += ["-m", str(memory_mb), "-smp", "1", "-nodefaults", "-no-user-config"]
        # LUMINAGUARD_VM_CONSOLE=FILE: the guest's console, for when a boot goes wrong.
        console = os.environ.get("LUMINAGUARD_VM_CONSOLE")
        argv += ["-nographic", "-serial", f"file:{console}" if console else "none", "-no-reboot"]
        if os.geteuid() == 0:
            # Files are opened first (kernel, initrd, RAM, sockets); then the
            # guest runs as a user that owns nothing on the host. The filter
            # must let -runas change ids once; with no capabilities left, a
            # later set*id call cannot get them back.
            argv += ["-runas", f"{HOST_ID}:{HOST_ID}"]
            argv += [
                "-sandbox",
                QEMU_SANDBOX.replace("elevateprivileges=deny", "elevateprivileges=allow"),
            ]
        else:
            argv += ["-sandbox", QEMU_SANDBOX]
        if ram_file is not None:
            share = "off" if restore else "on"
            argv += [
                "-object",
                f"memory-backend-file,id=mem,size={memory_mb}M,mem-path={ram_file},share={share}",
            ]
            machine += ",memory-backend=mem"
        argv += ["-M", machine]
        argv += ["-kernel", str(self.image.vmlinux), "-initrd", str(self.image.initrd)]
        argv += ["-append", KERNEL_ARGS.replace(" quiet", "") if console else KERNEL_ARGS]
        if self.image.rootfs is not None:
            # Shared by every clone, never written: read-only to QEMU itself.
            argv += ["-drive", f"file={self.image.rootfs},if=none,id=root,format=raw,readonly=on"]
            argv += ["-device", "virtio-blk-device,drive=root"]
        argv += ["-device", "virtio-serial-device", "-device", "virtio-rng-device"]
        argv += ["-chardev", f"socket,id=agent,path={self.dir / 'agent.sock'},server=on,wait=off"]
        argv += ["-device", "virtserialport,chardev=agent,name=agent"]
        argv += ["-qmp", f"unix:{self.dir / 'qmp.sock'},server=on,wait=off"]
        argv += ["-pidfile", str(self.dir / "qemu.pid")]
        if restore:
            argv += ["-incoming", "defer"]
        return argv

    def _start(
        self, memory_mb: int, ram_file: Path | None, restore_from: Path | None, timeout_s: float
    ) -> None:
        deadline = time.monotonic() + timeout_s
        argv = self._argv(memory_mb, ram_file, restore_from is not None)
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.qmp = Qmp(self.dir / "qmp.sock", deadline)
        if restore_from is not None:
            self.qmp.command("migrate-set-capabilities", capabilities=[_IGNORE_SHARED])
            fd = os.open(restore_from, os.O_RDONLY | os.O_CLOEXEC)
            try:
                self.qmp.command("getfd", fds=[fd], fdname="state")
            finally:
                os.close(fd)
            self.qmp.command("migrate-incoming", uri="fd:state")
            self._wait(lambda: self.qmp is not None and self.qmp.status() == "paused", deadline)
        self.agent = Agent(self.dir / "agent.sock", deadline)
        if restore_from is None:
            kind, _ = self._first_frame(deadline)
            if kind != "R":
                raise VmError(f"the guest agent began with {kind!r}")

    def _first_frame(self, deadline: float) -> tuple[str, bytes]:
        assert self.agent is not None
        try:
            return self.agent.frame(max(0.1, deadline - time.monotonic()))
        except VmError:
            raise VmError(f"the guest did not reach its agent: {self._stderr()}") from None

    def _wait(self, ready: object, deadline: float) -> None:
        assert callable(ready)
        while not ready():
            if self.proc is not None and self.proc.poll() is not None:
                raise VmError(f"QEMU exited: {self._stderr()}")
            if time.monotonic() > deadline:
                raise VmError("QEMU did not get ready in time")
            time.sleep(0.002)

    def _stderr(self) -> str:
        if self.proc is None or self.proc.stderr is None or self.proc.poll() is None:
            return "no answer"
        return self.proc.stderr.read().decode("utf-8", "replace").strip()[-300:] or "no output"

    def resume(self) -> None:
        """Run a paused (restored) clone, and give it randomness of its own."""
        assert self.qmp is not None and self.agent is not None
        self.qmp.command("cont")
        self.agent.send("S", os.urandom(64))

    def pause(self) -> None:
        assert self.qmp is not None
        self.qmp.command("stop")

    def snapshot(self, state: Path) -> None:
        """Save the device state to ``state`` (the RAM stays in the RAM file),
        leaving the VM stopped: it is the template now, not to be run again."""
        assert self.qmp is not None
        self.qmp.command("stop")
        self.qmp.command("migrate-set-capabilities", capabilities=[_IGNORE_SHARED])
        fd = os.open(state, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            self.qmp.command("getfd", fds=[fd], fdname="state")
        finally:
            os.close(fd)
        self.qmp.command("migrate", uri="fd:state")
        deadline = time.monotonic() + 60

        def done() -> bool:
            assert self.qmp is not None
            answer = self.qmp.command("query-migrate")
            status = answer.get("status") if isinstance(answer, dict) else None
            if status == "failed":
                raise VmError(f"saving the snapshot failed: {answer}")
            return status == "completed"

        self._wait(done, deadline)

    def close(self) -> None:
        for part in (self.agent, self.qmp):
            if part is not None:
                part.close()
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
            if self.proc.stderr is not None:
                self.proc.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Vm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_IGNORE_SHARED = {"capability": "x-ignore-shared", "state": True}
VM_DIR_PREFIX = "lg-vm-"


def sweep_stale() -> int:
    """Kill the VMs of processes that died without closing them (kill -9);
    returns how many. Our own and live owners' VMs are left alone."""
    swept = 0
    for directory in Path(tempfile.gettempdir()).glob(f"{VM_DIR_PREFIX}*"):
        try:
            owner = int((directory / "owner").read_text())
        except (OSError, ValueError):
            continue
        if _alive(owner):
            continue
        with contextlib.suppress(OSError, ValueError):
            pid = int((directory / "qemu.pid").read_text())
            if b"qemu" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, 9)
                swept += 1
        shutil.rmtree(directory, ignore_errors=True)
    return swept


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _connect(path: Path, deadline: float) -> socket.socket:
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(path))
            return sock
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if time.monotonic() > deadline:
                raise VmError(f"nothing listens on {path.name}") from None
            time.sleep(0.002)


@dataclass
class Template:
    """A booted guest saved to disk: clones start from it."""

    ram: Path
    state: Path
    memory_mb: int


def make_template(image: Image, accel: str, directory: Path, memory_mb: int = GUEST_MB) -> Template:
    """Boot once to a ready agent and save it (RAM file + state file)."""
    directory.mkdir(parents=True, exist_ok=True)
    template = Template(directory / "ram", directory / "state", memory_mb)
    with Vm(image, accel=accel, memory_mb=memory_mb, ram_file=template.ram) as vm:
        if image.rootfs is not None and vm.agent is not None:
            # The usual tools, read once into the page cache the snapshot keeps:
            # every clone then starts them from memory, not from the disk image.
            vm.agent.run(["/bin/sh", "-c", PRELOAD], options={"chroot": "/newroot"}, timeout_s=120)
        vm.snapshot(template.state)
    return template


PRELOAD = (
    "python3 -c 'import json, os, re, subprocess, unittest' >/dev/null 2>&1; git --version; "
    "for t in sh bash ls cat grep sed find sort head tail wc diff mkdir rm cp mv; do "
    "command -v $t; done"
)
"""Run in the guest's root before a template is saved."""


def clone(image: Image, template: Template, accel: str) -> Vm:
    """A paused clone of ``template``: ``resume`` it to run it."""
    return Vm(
        image,
        accel=accel,
        memory_mb=template.memory_mb,
        ram_file=template.ram,
        restore_from=template.state,
    )
