"""Which host user a sandbox runs as, when LuminaGuard itself runs as root.

bubblewrap maps the sandbox user (uid 1000 inside) to the uid that starts it.
Started by root, that is host uid 0: every root-owned file bound into the
sandbox (``/usr``, the ``/etc`` allow-list, an npm cache) then looks like the
sandbox user's own, and a root-only one (``/etc/ssl/private``) is readable.

So, as root, bubblewrap is started as an unprivileged host uid of its own
(``HOST_ID``) instead, by ``nsenter --setuid``: host files are then "nobody"
inside, readable only when they are world-readable. The workspace is the
person's, and must stay theirs to work on: it is bound through an *id-mapped
mount* that shows its owner's files as ``HOST_ID``'s (so as the sandbox
user's), and shows what the sandbox writes as its owner's again on disk.

The id-mapped mounts (and plain ones for other paths bubblewrap must reach
through directories only root can enter, such as ``/root``) live in a mount
namespace private to this process: nothing is mounted where the host can see
it, and everything goes when the process does (kill -9 included).

Where the kernel cannot do it (no id-mapped mounts on the workspace's file
system, overlayfs too old for id-mapped layers, no ``nsenter``), sandboxes
fall back to the mapping to host root, with a warning; ``doctor`` says which.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import os
import platform
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from luminaguard.errors import NoIdmap, SandboxError

if TYPE_CHECKING:
    from luminaguard.sandbox.profile import Layout

HOST_ID = 2_147_000_000
"""The host uid and gid sandboxes run as under root: far above the ranges
distributions hand out (users, system users, subordinate ids), so that no other
process on the host is this user."""

# <linux/mount.h>, <linux/fcntl.h>, <sched.h>; x86-64 and arm64 share the
# numbers of the new mount syscalls.
SYS_OPEN_TREE, SYS_MOVE_MOUNT, SYS_MOUNT_SETATTR = 428, 429, 442
OPEN_TREE_CLONE = 1
AT_RECURSIVE = 0x8000
AT_EMPTY_PATH = 0x1000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV = 0x1, 0x2, 0x4
MOUNT_ATTR_IDMAP = 0x0010_0000
MS_BIND = 0x1000
CLONE_FS = 0x0000_0200
CLONE_NEWNS = 0x0002_0000
MS_REC, MS_SLAVE = 0x4000, 0x8_0000
MNT_DETACH = 2
OVERLAY_IDMAP_KERNEL = (5, 19)
"""overlayfs takes id-mapped layers from this kernel on."""

T = TypeVar("T")


def running_as_root() -> bool:
    return os.geteuid() == 0


@dataclass(frozen=True)
class Staged:
    identity: tuple[int, int]
    """(st_dev, st_ino) of the source when it was staged: a directory replaced
    since (a worktree made again) is staged again."""
    path: Path


@dataclass(frozen=True)
class Entry:
    mount_ns: str
    uid: int
    gid: int


class Namespace:
    """This process's private mount namespace and what is staged in it."""

    def __init__(self) -> None:
        self.nsenter = shutil.which("nsenter")
        if self.nsenter is None:
            raise OSError("nsenter (util-linux) is not installed")
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._lock = threading.Lock()
        self._staged: dict[tuple[str, bool], Staged] = {}
        self._userns: dict[tuple[int, int], int] = {}
        self._etc: tuple[tuple[tuple[int, int], ...], Path] | None = None
        self._count = 0
        # An empty directory on the host; in our namespace a tmpfs is mounted
        # on it and every staged mount goes below. Reachable by HOST_ID (0711).
        self.base = Path(tempfile.mkdtemp(prefix="lg-mounts-"))
        self.base.chmod(0o711)
        atexit.register(self._remove_base)
        self.fd = self._in_thread(self._create)

    def _remove_base(self) -> None:
        with contextlib.suppress(OSError):
            self.base.rmdir()

    # A mount namespace is per thread: a thread that has unshared its file
    # system attributes may enter one without moving the rest of the process.
    def _in_thread(self, work: Callable[[], T]) -> T:
        box: list[T] = []
        errors: list[BaseException] = []

        def run() -> None:
            try:
                box.append(work())
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=run, name="luminaguard-mounts")
        thread.start()
        thread.join()
        if errors:
            raise errors[0]
        return box[0]

    def _call(self, number: int, *args: object) -> int:
        return self._check(self._libc.syscall(number, *args))

    @staticmethod
    def _check(result: int) -> int:
        """A libc call's result, or its errno raised (they return -1 on failure)."""
        if result < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return int(result)

    def _create(self) -> int:
        self._check(self._libc.unshare(CLONE_FS | CLONE_NEWNS))
        # Host mounts still show up in here; ours never go out.
        self._check(self._libc.mount(None, b"/", None, MS_REC | MS_SLAVE, None))
        self._check(self._libc.mount(b"tmpfs", bytes(self.base), b"tmpfs", 0, b"mode=0711,size=1m"))
        return os.open("/proc/thread-self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)

    def _enter(self) -> None:
        self._check(self._libc.unshare(CLONE_FS))
        self._check(self._libc.setns(self.fd, CLONE_NEWNS))

    def entry(self) -> Entry:
        """How a sandbox's start enters our namespace and becomes ``HOST_ID``.
        A path under /proc, not an inherited fd: the MCP SDK's spawner passes none."""
        return Entry(f"/proc/{os.getpid()}/fd/{self.fd}", HOST_ID, HOST_ID)

    def prefix(self) -> list[str]:
        """Starts the rest of a command line as ``entry`` says, by nsenter."""
        assert self.nsenter is not None
        entry = self.entry()
        return [
            self.nsenter,
            f"--mount={entry.mount_ns}",
            f"--setuid={entry.uid}",
            f"--setgid={entry.gid}",
            "--",
        ]

    def stage(self, source: Path, *, idmap: bool) -> Path:
        """``source`` at a path bubblewrap can reach as ``HOST_ID``: an id-mapped
        mount of it (its owner shown as ``HOST_ID``), or a plain one."""
        st = os.stat(source)
        key = (str(source), idmap)
        with self._lock:
            known = self._staged.get(key)
            if known is not None and known.identity == (st.st_dev, st.st_ino):
                return known.path
            userns = self._userns_for(st.st_uid, st.st_gid) if idmap else -1
            self._count += 1
            target = self.base / f"{self._count}-{source.name or 'root'}"
            self._in_thread(
                lambda: self._mount(source, target, userns, is_dir=os.path.isdir(source))
            )
            self._staged[key] = Staged((st.st_dev, st.st_ino), target)
            return target

    def _mount(self, source: Path, target: Path, userns: int, *, is_dir: bool) -> None:
        self._enter()
        if is_dir:
            target.mkdir()
        else:
            target.touch()
        tree = self._call(
            SYS_OPEN_TREE, -100, bytes(source), OPEN_TREE_CLONE | os.O_CLOEXEC | AT_RECURSIVE
        )
        try:
            if userns >= 0:
                attr = ctypes.create_string_buffer(
                    struct.pack("QQQQ", MOUNT_ATTR_IDMAP, 0, 0, userns), 32
                )
                try:
                    self._call(SYS_MOUNT_SETATTR, tree, b"", AT_EMPTY_PATH | AT_RECURSIVE, attr, 32)
                except OSError as exc:
                    raise NoIdmap(exc.strerror or str(exc)) from None
            self._call(SYS_MOVE_MOUNT, tree, b"", -100, bytes(target), MOVE_MOUNT_F_EMPTY_PATH)
        finally:
            os.close(tree)

    def etc(self, entries: Sequence[tuple[str, bool]], files: Mapping[str, bytes]) -> Path:
        """The sandbox's /etc, ready to be bound whole: a tmpfs holding ``files``
        (passwd, group) and a bind of each allowed host entry, every mount in it
        read-only. Made once, and again when an entry has been replaced since (a
        file renamed over, as ``ldconfig`` does): a bind shows the old one."""
        identity = tuple(_identity(path) for path, _ in entries)
        with self._lock:
            known = self._etc
            if known is not None and known[0] == identity:
                return known[1]
            self._count += 1
            target = self.base / f"{self._count}-etc"
            present = [e for e, id_ in zip(entries, identity, strict=True) if id_ != MISSING]
            self._in_thread(lambda: self._make_etc(target, present, files))
            self._etc = (identity, target)
        if known is not None:
            # Sandboxes running hold their own copy of the old one's mounts.
            self.unmount(known[1])
        return target

    def _make_etc(
        self, target: Path, entries: Sequence[tuple[str, bool]], files: Mapping[str, bytes]
    ) -> None:
        self._enter()
        target.mkdir()
        self._check(self._libc.mount(b"tmpfs", bytes(target), b"tmpfs", 0, b"mode=0755,size=1m"))
        for name, data in files.items():
            (target / name).write_bytes(data)
            (target / name).chmod(0o644)
        for path, is_dir in entries:
            point = target / Path(path).name
            if is_dir:
                point.mkdir()
            else:
                point.touch()
            self._check(self._libc.mount(path.encode(), bytes(point), None, MS_BIND | MS_REC, None))
        attr = ctypes.create_string_buffer(
            struct.pack("QQQQ", MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0, 0, 0),
            32,
        )
        self._call(SYS_MOUNT_SETATTR, -100, bytes(target), AT_RECURSIVE, attr, 32)

    def overlay(self, lower: Path, upper: Path, work: Path) -> Path:
        """A copy-on-write overlay of ``lower`` (a staged path), writes landing in
        ``upper``: for a backend that cannot make the overlay itself (gVisor).
        ``unmount`` takes it down."""
        with self._lock:
            self._count += 1
            target = self.base / f"{self._count}-overlay"
        options = f"lowerdir={lower},upperdir={upper},workdir={work}".encode()

        def mount() -> None:
            self._enter()
            target.mkdir()
            self._check(self._libc.mount(b"overlay", bytes(target), b"overlay", 0, options))

        self._in_thread(mount)
        return target

    def unmount(self, target: Path) -> None:
        def unmount() -> None:
            self._enter()
            self._check(self._libc.umount2(bytes(target), MNT_DETACH))
            target.rmdir()

        with contextlib.suppress(OSError):
            self._in_thread(unmount)

    def _userns_for(self, uid: int, gid: int) -> int:
        """A user namespace that maps ``uid``/``gid`` to ``HOST_ID``: the
        id-mapping of a workspace owned by them. A user namespace can only be
        made by a single-threaded process, so a short-lived one makes it."""
        known = self._userns.get((uid, gid))
        if known is not None:
            return known
        holder = subprocess.Popen(
            ["unshare", "--user", "--", "/bin/sh", "-c", "echo; read _"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        try:
            assert holder.stdout is not None
            holder.stdout.readline()  # it has unshared
            Path(f"/proc/{holder.pid}/uid_map").write_text(f"{uid} {HOST_ID} 1\n")
            Path(f"/proc/{holder.pid}/gid_map").write_text(f"{gid} {HOST_ID} 1\n")
            fd = os.open(f"/proc/{holder.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            holder.kill()
            holder.wait()
        self._userns[(uid, gid)] = fd
        return fd


_LOCK = threading.Lock()
_namespace: Namespace | None = None
_problem: str | None = None
_warned = False


def namespace() -> Namespace | None:
    """Ours, made on first use; ``None`` when not root or it cannot be made
    (``problem()`` says why)."""
    global _namespace, _problem
    if not running_as_root():
        return None
    with _LOCK:
        if _namespace is None and _problem is None:
            try:
                if _kernel() < OVERLAY_IDMAP_KERNEL:
                    raise OSError(
                        f"kernel {platform.release()} is older than 5.19 "
                        "(overlayfs over id-mapped mounts)"
                    )
                _namespace = Namespace()
            except OSError as exc:
                _problem = exc.strerror or str(exc)
        return _namespace


def problem() -> str | None:
    namespace()
    return _problem


def adapt(layout: Layout) -> tuple[Layout, list[str]]:
    """``layout`` as bubblewrap must see it when started as ``HOST_ID``, and the
    command prefix that starts it so; unchanged (and no prefix) when not root."""
    ns = namespace()
    if ns is None:
        if running_as_root():
            _warn(problem() or "the sandbox cannot run as an unprivileged user")
        return layout, []
    try:
        return _adapted(ns, layout), ns.prefix()
    except NoIdmap as exc:
        # A file system without id-mapped mounts (NFS, an old tmpfs...).
        _warn(f"{layout.workspace} cannot be id-mapped ({exc})")
        return layout, []
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        raise SandboxError(
            f"a path the sandbox needs cannot be bound into it:{where} {exc.strerror or exc}"
        ) from None


def prepared_etc() -> Path | None:
    """The prepared /etc (``Namespace.etc``) where sandboxes start in our
    namespace; None where they do not (not root, or the namespace failed)."""
    ns = namespace()
    if ns is None:
        return None
    from luminaguard.sandbox.profile import GROUP, PASSWD, etc_entries

    return ns.etc(etc_entries(), {"passwd": PASSWD.encode(), "group": GROUP.encode()})


MISSING = (-1, -1)


def _identity(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return MISSING
    return (st.st_dev, st.st_ino)


def _adapted(ns: Namespace, layout: Layout) -> Layout:
    from luminaguard.sandbox.profile import helpers_dir

    for own in (layout.upper, layout.work, layout.proxy_dir):
        if own is not None:
            # Directories we made for this sandbox alone, to write in.
            os.chown(own, HOST_ID, HOST_ID)
            own.chmod(0o700)
            parent = own.parent
            parent.chmod(parent.stat().st_mode & 0o7777 | 0o111)
    return replace(
        layout,
        workspace=ns.stage(layout.workspace, idmap=True),
        ro_binds=tuple(
            (str(ns.stage(Path(host), idmap=False)), inside) for host, inside in layout.ro_binds
        ),
        helpers=str(ns.stage(Path(helpers_dir()), idmap=False)),
    )


def _warn(why: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        print(
            f"luminaguard: WARNING: running as root and {why}: the sandbox user is host "
            "root for the files bound into it (`luminaguard doctor`)",
            file=sys.stderr,
        )


@functools.cache
def _kernel() -> tuple[int, int]:
    parts = platform.release().split(".")
    try:
        return int(parts[0]), int(parts[1].split("-")[0])
    except (IndexError, ValueError):
        return (0, 0)
