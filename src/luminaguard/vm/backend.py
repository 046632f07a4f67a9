"""The micro-VM backend: each command in a fresh clone of a booted guest.

A command gets its own kernel: a clone restored from a snapshot of the
booted guest (``pool.ClonePool``), destroyed after that one command. Inside,
it runs as uid 1000 with no capabilities, no_new_privs and the host's own
seccomp filter, chrooted into the read-only Debian root image, with the
workspace at ``/workspace``; the VM has no network device at all.

The workspace goes in as a tar stream over the agent's port (owned by the
sandbox user inside, as the id-mapped workspace is in the other backends).
A read-only command sees it read-only. Anything else runs on an overlay in
the guest's memory, and what it wrote comes back as a tar of the overlay's
upper directory (plus the directories it made opaque), unpacked on the host
into an upper directory like bubblewrap's: a preview's effects, card and
commit are therefore exactly the other backends' (``sandbox/preview.py``);
a read-write ``exec`` is a preview committed at once.

What comes back from the guest is untrusted: every name is checked to stay
inside the upper directory with no link followed, only files, directories,
symlinks and whiteouts are made, and the total is capped at the preview disk
cap. A long-lived process (an MCP server) runs in a clone of its own, the
workspace read-only (``process``). Not yet here: a network.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import io
import os
import shutil
import socket
import stat
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from luminaguard.config import SandboxSettings
from luminaguard.errors import (
    ConfigError,
    LuminaGuardError,
    OverCap,
    SandboxError,
    SandboxUnavailable,
    VmError,
)
from luminaguard.protocols import ExecResult, Preview, ProcessLaunch, ProcessSpec
from luminaguard.sandbox import preview as previews
from luminaguard.sandbox.network import NetworkMode
from luminaguard.sandbox.profile import SANDBOX_ENV, SANDBOX_UID
from luminaguard.sandbox.workspace import Workspace, WorkspaceFiles
from luminaguard.service_socket import peer_uid
from luminaguard.store import exclusive
from luminaguard.vm.image import Image, find_image
from luminaguard.vm.pool import ClonePool
from luminaguard.vm.qemu import (
    GUEST_MB,
    Template,
    Vm,
    accelerator,
    find_qemu,
    make_template,
    sweep_stale,
)

GUEST_WS = "/tmp/lg/ws"
GUEST_UPPER = "/tmp/lg/up/upper"
GUEST_WORK = "/tmp/lg/up/work"
BUSYBOX = "/bin/busybox"
MIB = 1024 * 1024


class Runtime:
    """This process's image, accelerator, template and clone pool (made on first use)."""

    _lock = threading.Lock()
    _current: Runtime | None = None

    def __init__(self, image: Image, data_dir: Path, pool_size: int) -> None:
        sweep_stale()
        self.image = image
        self.accel = accelerator(image, data_dir).name
        self.template = _template(image, self.accel, data_dir)
        self.pool = ClonePool(image, self.template, self.accel, max(1, pool_size))
        # Spare clones are QEMU processes of their own: they go when we do.
        atexit.register(self.pool.close)
        self.pool.fill()

    @classmethod
    def get(cls, pool_size: int) -> Runtime:
        with cls._lock:
            if cls._current is None:
                data_dir = vm_data_dir()
                image = find_image(data_dir)
                if image is None or image.rootfs is None:
                    raise SandboxUnavailable(
                        "the microvm backend has no guest image yet: run "
                        "`luminaguard vm build-image` (once, ~2 minutes)"
                    )
                cls._current = cls(image, data_dir, pool_size)
            return cls._current


def vm_data_dir() -> Path:
    """Where images and templates live: the user's data directory, or
    ``LUMINAGUARD_VM_DATA`` (one cache shared by many data directories: tests, CI)."""
    from luminaguard.paths import user_data_dir

    shared = os.environ.get("LUMINAGUARD_VM_DATA")
    return Path(shared) if shared else user_data_dir()


def _template(image: Image, accel: str, data_dir: Path) -> Template:
    """The booted guest saved once per image and accelerator, reused by later processes."""
    directory = data_dir / "vm" / "templates" / f"{image.key}-{accel}-{GUEST_MB}"
    template = Template(directory / "ram", directory / "state", GUEST_MB)
    if template.state.exists() and template.ram.exists():
        return template
    directory.parent.mkdir(parents=True, exist_ok=True)
    # One process boots and saves it (seconds under TCG); another waits, then uses it.
    with exclusive(directory.parent / ".making.lock"):
        if template.state.exists() and template.ram.exists():
            return template
        scratch = Path(tempfile.mkdtemp(prefix="making-", dir=directory.parent))
        try:
            make_template(image, accel, scratch)
            shutil.rmtree(directory, ignore_errors=True)  # a partial one, left by a crash
            scratch.rename(directory)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return template


class MicrovmSandbox(WorkspaceFiles):
    """Runs each command in a fresh micro-VM clone over one workspace."""

    def __init__(
        self,
        workspace: Path,
        settings: SandboxSettings,
        *,
        network: NetworkMode | None = None,
        read_only: bool = False,
        ro_binds: Sequence[tuple[str, str]] = (),
        env: dict[str, str] | None = None,
        service: Path | None = None,
    ) -> None:
        self.ws = Workspace(workspace)
        self.workspace = self.ws.root
        self.settings = settings
        self.service = service
        """The data directory of a local service whose clone pool runs the
        read-only commands (this process's own pool when none runs)."""
        mode = network or NetworkMode.parse(settings.network)
        if mode.kind != "none":
            raise ConfigError(
                "the microvm backend has no network yet: use network `none`, or the "
                "gvisor backend for an allow-list"
            )
        if ro_binds:
            raise ConfigError("the microvm backend cannot bind host paths in yet")
        self.network = "none"
        self.read_only = read_only
        self.env = dict(env or {})
        self._runtime: Runtime | None = None
        self.check_available()

    @staticmethod
    def check_available() -> None:
        find_qemu()

    def _vm(self) -> Vm:
        if self._runtime is None:
            self._runtime = Runtime.get(self.settings.pool_size)
        return self._runtime.pool.acquire()

    # --- commands ---------------------------------------------------------

    async def exec(
        self,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        timeout_s: float | None = None,
        read_only: bool = False,
        offline: bool = False,
    ) -> ExecResult:
        if not argv:
            raise SandboxError("empty command")
        if read_only or self.read_only:
            if self.service is not None and not self.env:
                from luminaguard.service_socket import run_in_service

                served = await run_in_service(
                    self.service, self.workspace, list(argv), backend="microvm",
                    settings=self.settings, stdin=stdin, timeout_s=timeout_s,
                )  # fmt: skip
                if served is not None:
                    return served
                self.service = None  # not running: this process's own pool from now on
            return await asyncio.to_thread(self._run, list(argv), stdin, timeout_s, None)
        # Written for real: the changes come back as a preview, committed at once.
        done = await self.preview(argv, stdin=stdin, timeout_s=timeout_s)
        try:
            self.commit(done.handle)
        finally:
            self.discard(done.handle)
        return done.result

    async def preview(
        self,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        timeout_s: float | None = None,
        live: bool = False,
    ) -> Preview:
        if not argv:
            raise SandboxError("empty command")
        if os.geteuid() != 0:
            raise SandboxUnavailable(
                "a microvm preview needs LuminaGuard to run as root (to lay out the "
                "guest's changes as an overlay layer); use bwrap for previews"
            )

        async def runner(upper: Path) -> tuple[ExecResult, list[dict[str, object]], bool]:
            try:
                result = await asyncio.to_thread(self._run, list(argv), stdin, timeout_s, upper)
            except OverCap as over:
                assert isinstance(over.result, ExecResult)
                return over.result, [], True  # nothing brought back: a RED card says why
            return result, [], False

        return await previews.run_preview(
            self.workspace, self.settings, argv, stdin=stdin, timeout_s=timeout_s, runner=runner
        )

    def _run(
        self, argv: list[str], stdin: str | None, timeout_s: float | None, upper: Path | None
    ) -> ExecResult:
        """One command in a fresh clone; with ``upper``, on an overlay whose
        writes are unpacked there."""
        started = time.monotonic()
        vm = self._vm()
        try:
            agent = vm.agent
            assert agent is not None
            self._stage(vm, upper)
            limit = self.settings.output_limit_kb * 1024
            timeout = timeout_s or self.settings.timeout_s
            result = agent.run(
                argv,
                stdin=(stdin or "").encode(),
                options=self._options(limit),
                env={**SANDBOX_ENV, **self.env},
                timeout_s=timeout,
            )
            over_cap = upper is not None and not self._bring_back(vm, upper)
        finally:
            vm.close()
        out, err = result.stdout, result.stderr
        truncated = len(out) > limit or len(err) > limit
        done = ExecResult(
            exit_code=124 if result.timed_out else result.exit_code,
            stdout=_capped(out, limit),
            stderr=_capped(err, limit),
            duration_s=time.monotonic() - started,
            timed_out=result.timed_out,
            truncated=truncated,
        )
        if over_cap:
            raise OverCap(done)
        return done

    def _stage(self, vm: Vm, upper: Path | None) -> None:
        """The workspace into the guest at /workspace: read-only, or (with
        ``upper``) on an overlay whose writes stay in the guest's upper directory."""
        agent = vm.agent
        assert agent is not None
        setup = (
            f"mkdir -p {GUEST_WS} {GUEST_UPPER} {GUEST_WORK} && tar -x -C {GUEST_WS} && "
            # The workspace's root is the sandbox user's too (overlay shows the upper's).
            f"chown {SANDBOX_UID}:{SANDBOX_UID} {GUEST_WS} {GUEST_UPPER} && "
            f"chmod {stat.S_IMODE(os.stat(self.ws.root).st_mode):o} {GUEST_WS} {GUEST_UPPER} && "
            + (
                f"mount -t overlay overlay -o lowerdir={GUEST_WS},upperdir={GUEST_UPPER},"
                f"workdir={GUEST_WORK} /newroot/workspace"
                if upper is not None
                else f"mount --bind {GUEST_WS} /newroot/workspace && "
                "mount -o remount,bind,ro /newroot/workspace"
            )
        )
        staged = agent.run([BUSYBOX, "sh", "-c", setup], stdin=_tar_of(self.ws.root))
        if staged.exit_code != 0:
            raise SandboxError(f"the workspace could not be set up in the VM: {staged.stderr!r}")

    def _options(self, limit: int | None) -> dict[str, str]:
        s = self.settings
        return {
            "chroot": "/newroot",
            "cwd": "/workspace",
            "uid": str(SANDBOX_UID),
            "gid": str(SANDBOX_UID),
            "seccomp": "/seccomp.bpf",
            "rlimit_as": str(s.memory_mb * MIB),
            "rlimit_cpu": str(s.cpu_s),
            "rlimit_fsize": str(s.max_file_mb * MIB),
            "rlimit_nofile": str(s.max_open_files),
            "rlimit_nproc": str(s.pids_max),
            "rlimit_core": "0",
            # None: a long-lived process's output is a stream, not a capped result.
            **({"output_limit": str(limit)} if limit is not None else {}),
        }

    def _bring_back(self, vm: Vm, upper: Path) -> bool:
        """The guest's changes into ``upper``; False, with nothing brought
        back, when they are larger than the preview disk cap."""
        agent = vm.agent
        assert agent is not None
        cap = self.settings.preview_disk_mb * MIB
        packed = agent.run(
            [BUSYBOX, "tar", "-c", "-C", GUEST_UPPER, "."], options={"output_limit": str(cap)}
        )
        if packed.exit_code != 0:
            raise SandboxError(f"the VM's changes could not be read back: {packed.stderr!r}")
        if len(packed.stdout) >= cap:
            return False  # they stay in the guest, and go with it: the host's disk is not filled
        opaque = agent.run(["lg-opaque", GUEST_UPPER]).stdout.decode("utf-8", "replace")
        unpack(packed.stdout, upper)
        prefix = GUEST_UPPER.rstrip("/") + "/"
        for line in opaque.splitlines():
            if line.startswith(prefix):
                target = _inside(upper, line[len(prefix) :])
                if target is not None and target.is_dir() and not target.is_symlink():
                    os.setxattr(target, "trusted.overlay.opaque", b"y", follow_symlinks=False)
        return True

    def commit(self, handle: str) -> None:
        previews.commit(handle, self.workspace)

    def discard(self, handle: str) -> None:
        previews.discard(handle)

    def network_records(self) -> list[dict[str, object]]:
        return []

    @contextlib.asynccontextmanager
    async def process(
        self, spec: ProcessSpec, *, on_network: Any = None
    ) -> AsyncIterator[ProcessLaunch]:
        """A long-lived process (an MCP server) in a clone of its own, the
        workspace read-only. Its client starts a relay (``relay_main``) whose
        stdin and stdout are the process's, joined through a socket to the
        guest agent here. What it runs must be in the guest image (Debian's
        python3 and git, busybox) or the workspace: host paths cannot be
        brought in yet, and there is no network."""
        why = _unsupported(spec)
        if why:
            raise ConfigError(
                f'{why} in a micro-VM yet: give that server `backend = "gvisor"` (or "bwrap")'
            )
        bridge = await asyncio.to_thread(self._bridge, spec)
        try:
            relay = Path(__file__).with_name("relay_main.py")
            yield ProcessLaunch(
                [sys.executable, "-I", "-S", str(relay), str(bridge.path)], {"PATH": os.defpath}
            )
        finally:
            await asyncio.to_thread(bridge.close)

    def _bridge(self, spec: ProcessSpec) -> ProcessBridge:
        vm = self._vm()
        try:
            self._stage(vm, None)
            return ProcessBridge(vm, spec.argv, self._options(None), {**SANDBOX_ENV, **spec.env})
        except BaseException:
            vm.close()
            raise

    def pool_stats(self) -> dict[str, object] | None:
        return self._runtime.pool.stats_dict() if self._runtime is not None else None

    def close(self) -> None:
        pass  # the pool is the process's (Runtime), shared by every sandbox in it


def _unsupported(spec: ProcessSpec) -> str:
    """Why ``spec`` cannot run in a micro-VM ("" when it can)."""
    try:
        mode = NetworkMode.parse(spec.network)
    except LuminaGuardError as exc:
        raise ConfigError(str(exc)) from None
    if mode.kind != "none":
        return "a long-lived process cannot have a network"
    if spec.writable:
        return "a long-lived process cannot write the workspace"
    if spec.ro_paths:
        return f"host paths ({', '.join(spec.ro_paths)}) cannot be brought"
    return ""


class ProcessBridge:
    """One long-lived command in a clone, joined to its relay's socket: the
    relay's bytes become ``I`` frames, ``O`` frames become the relay's. The
    socket is in a 0700 directory and takes one connection, of our own uid."""

    def __init__(
        self, vm: Vm, argv: list[str], options: dict[str, str], env: dict[str, str]
    ) -> None:
        self.vm = vm
        self.dir = Path(tempfile.mkdtemp(prefix="lg-vmproc-"))
        self.path = self.dir / "io.sock"
        self._conn: socket.socket | None = None
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(self.path))
        self._listener.listen(1)
        self._thread = threading.Thread(
            target=self._serve, args=(argv, options, env), name="lg-vm-process", daemon=True
        )
        self._thread.start()

    def _serve(self, argv: list[str], options: dict[str, str], env: dict[str, str]) -> None:
        agent = self.vm.agent
        assert agent is not None
        try:
            while True:
                conn, _ = self._listener.accept()
                if peer_uid(conn) == os.getuid():
                    break
                conn.close()
            self._conn = conn
            agent.start(argv, options=options, env=env)
            threading.Thread(target=self._up, args=(conn,), daemon=True).start()
            while True:
                kind, data = agent.frame()
                # The guest's stderr (E, F) has nowhere to go yet: the relay has one stream.
                if kind == "O":
                    conn.sendall(data)
                elif kind == "X":
                    break
        except (OSError, VmError):
            pass  # the relay or the guest is gone: close() tidies up
        finally:
            if self._conn is not None:
                with contextlib.suppress(OSError):
                    self._conn.shutdown(socket.SHUT_RDWR)

    def _up(self, conn: socket.socket) -> None:
        agent = self.vm.agent
        assert agent is not None
        try:
            while data := conn.recv(65536):
                agent.send("I", data)
            agent.send("I")  # end of the command's stdin
        except OSError:
            pass

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self.vm.close()
        if self._conn is not None:
            self._conn.close()
        self._thread.join(5)
        shutil.rmtree(self.dir, ignore_errors=True)


def _capped(data: bytes, limit: int) -> str:
    text = data[:limit].decode("utf-8", "replace")
    if len(data) > limit:
        text += "\n[... more bytes not kept]"
    return text


def _tar_of(root: Path) -> bytes:
    """The workspace as a tar, every entry the sandbox user's (as id-mapped
    elsewhere); symlinks as they are, never followed."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def own(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
            if not (info.isfile() or info.isdir() or info.issym()):
                return None  # no devices, fifos or sockets go in
            info.uid = info.gid = SANDBOX_UID
            info.uname = info.gname = ""
            return info

        for entry in sorted(os.listdir(root)):
            tar.add(root / entry, arcname=entry, recursive=True, filter=own)
    return buffer.getvalue()


def _inside(upper: Path, name: str) -> Path | None:
    """``name`` under ``upper``, or None when it would leave it."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        return None
    return upper.joinpath(*parts)


def unpack(data: bytes, upper: Path) -> None:
    """The guest's upper directory, from its tar, into ``upper``: checked entry
    by entry (the guest is untrusted), no link ever followed."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for member in tar:
            target = _inside(upper, member.name)
            if target is None:
                continue  # "." itself, or a name that would leave the layer
            parent = target.parent
            # Every directory on the way must be a real directory of this layer.
            probe = parent
            while probe != upper:
                if probe.is_symlink() or not probe.is_dir():
                    raise SandboxError(
                        f"the VM's changes name a path through a non-directory: {member.name}"
                    )
                probe = probe.parent
            mode = member.mode & 0o7777
            if member.isdir():
                if not target.is_dir() or target.is_symlink():
                    target.mkdir()
                os.chmod(target, mode, follow_symlinks=False)
            elif member.isfile():
                source = tar.extractfile(member)
                assert source is not None
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(source, out)
                os.chmod(target, mode)
            elif member.issym():
                os.symlink(member.linkname, target)
            elif member.ischr() and member.devmajor == 0 and member.devminor == 0:
                os.mknod(target, stat.S_IFCHR | 0o600, 0)  # a whiteout: deleted
            else:
                raise SandboxError(
                    f"the VM's changes hold an entry of an unsupported kind: {member.name}"
                )
