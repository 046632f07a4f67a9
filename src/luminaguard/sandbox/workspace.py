"""File operations on a workspace that never leave it, and cannot be raced out of it.

Paths from the model are relative to the workspace root (a leading ``/`` is
read as the root too, since inside the sandbox the workspace is ``/workspace``).

Every read, write, delete, mkdir, chmod and symlink is done relative to a
directory descriptor reached from the root with no path component followed
through a symlink: Linux ``openat2`` with ``RESOLVE_BENEATH |
RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`` where the kernel has it, else a
component-by-component ``O_NOFOLLOW | O_DIRECTORY`` walk. Modes are set on
the opened descriptor (``fchmod``), never on a path after the fact. So a
process that swaps a directory for a symlink while a commit or a read runs
gets an error, never the host file the link points at. (Resolving a path
first and opening it after is a check-then-use race; only the classifier's
``resolve``/``is_inside`` still resolve, to judge a path, never to act on it.)

This is not a sandbox by itself: it keeps the host-side helpers honest,
commands still run inside the sandbox.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from luminaguard.core.paths import SANDBOX_ROOT, relative
from luminaguard.errors import ToolError, WorkspacePathError

__all__ = ["SANDBOX_ROOT", "Transaction", "Workspace"]

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS, RESOLVE_BENEATH = 0x02, 0x04, 0x08
SYS_OPENAT2 = 437  # x86_64 and aarch64 alike


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_openat2_works = True


def _openat2(dirfd: int, path: str, flags: int, mode: int = 0) -> int | None:
    """``openat2`` beneath ``dirfd`` with no symlink followed; None where the
    kernel (or the platform) has no openat2, so the caller walks instead."""
    global _openat2_works
    libc = _libc()
    if not _openat2_works or libc is None:
        return None
    how = _OpenHow(flags, mode, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)
    fd = libc.syscall(SYS_OPENAT2, dirfd, path.encode(), ctypes.byref(how), ctypes.sizeof(how))
    if fd >= 0:
        return int(fd)
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EPERM) and _openat2_works:
        # No openat2 here (or a seccomp filter refuses it): walk from now on.
        _openat2_works = False
        return None
    raise OSError(err, os.strerror(err), path)


class Workspace:
    """A directory the agent works in (a ``core.paths.WorkspaceView`` for the policy)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        if not self.root.is_dir():
            raise ToolError(f"workspace {root} is not a directory")

    def relative(self, path: str) -> PurePosixPath:
        """The workspace-relative form of ``path``; refuses anything that climbs out."""
        return relative(path)

    # --- judging a path (the classifier) -----------------------------------

    def resolve(self, path: str) -> Path:
        """The host path of ``path``, with symlinks resolved; must stay inside the root.
        For judging a path only: acting on the result would be a race."""
        try:
            host = (self.root / self.relative(path)).resolve()
        except OSError as exc:  # changing under our feet (a link swapped mid-resolve)
            raise WorkspacePathError(f"{path} cannot be resolved: {exc.strerror}") from None
        if host != self.root and not host.is_relative_to(self.root):
            raise WorkspacePathError(f"{path} resolves outside the workspace")
        return host

    def is_inside(self, path: str) -> bool:
        try:
            self.resolve(path)
        except WorkspacePathError:
            return False
        return True

    def exists(self, path: str) -> bool:
        try:
            return self.resolve(path).exists()
        except WorkspacePathError:
            return False

    # --- descriptors -------------------------------------------------------

    @contextlib.contextmanager
    def directory(self, rel: PurePosixPath, *, create: bool = False) -> Iterator[int]:
        """A descriptor of the workspace directory ``rel``, reached without
        following any symlink (created on the way with ``create``)."""
        root = os.open(self.root, DIR_FLAGS)
        fd = root
        try:
            parts = [p for p in rel.parts if p != "."]
            if parts and not create:
                found = _openat2(root, "/".join(parts), DIR_FLAGS)
                if found is not None:
                    os.close(root)
                    fd = found
                    parts = []
            for part in parts:
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, 0o755, dir_fd=fd)
                nxt = os.open(part, DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = nxt
            yield fd
        except OSError as exc:
            raise self._error(str(rel), exc) from exc
        finally:
            os.close(fd)

    def _error(self, path: str, exc: OSError) -> ToolError:
        if exc.errno in (errno.ELOOP, errno.EXDEV, errno.ENOTDIR):
            return WorkspacePathError(
                f"{path} goes through a symlink or a file, which host-side operations never follow"
            )
        if exc.errno == errno.ENOENT:
            return ToolError(f"{path}: no such file")
        return ToolError(f"{path}: {exc.strerror}")

    def _split(self, path: str) -> tuple[PurePosixPath, str]:
        rel = self.relative(path)
        if rel == PurePosixPath("."):
            raise ToolError(f"{path} is the workspace itself")
        return rel.parent, rel.name

    # --- acting on it ------------------------------------------------------

    def read_file(self, path: str) -> bytes:
        parent, name = self._split(path)
        with self.directory(parent) as d:
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=d)
            except IsADirectoryError:
                raise ToolError(f"{path} is a directory") from None
            except OSError as exc:
                raise self._error(path, exc) from exc
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            os.close(fd)
            raise ToolError(f"{path} is a directory")
        with os.fdopen(fd, "rb") as f:
            return f.read()

    def write_file(self, path: str, data: bytes, *, mode: int | None = None) -> None:
        """Create or replace the file ``path`` with ``data``, atomically (a new
        file renamed into place: a reader sees the old content or the new, a
        failure leaves the old); with ``mode``, set on the new file's descriptor
        (permission bits only), else a replaced file keeps its own."""
        with self.transaction() as t:
            t.write(path, data, mode)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Changes that land all together or not at all: on an exception inside
        the block every change made so far is undone, and the exception goes on
        (a ``ToolError`` says what was and was not put back)."""
        t = Transaction(self)
        try:
            yield t
        except BaseException as exc:
            left = t.rollback()
            if left and isinstance(exc, ToolError):
                raise ToolError(
                    f"{exc}; rolled back except for {', '.join(left)}, which could not be put back"
                ) from exc
            raise
        t.finish()

    def delete_file(self, path: str) -> None:
        """Remove one file (a symlink is removed, never followed)."""
        parent, name = self._split(path)
        with self.directory(parent) as d:
            try:
                st = os.stat(name, dir_fd=d, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    raise ToolError(f"{path} is a directory; delete_file removes files only")
                os.unlink(name, dir_fd=d)
            except OSError as exc:
                raise self._error(path, exc) from exc

    def list_dir(self, path: str) -> list[tuple[str, str, int]]:
        with self.directory(self.relative(path)) as d:
            out = []
            with os.scandir(d) as it:
                for entry in it:
                    st = entry.stat(follow_symlinks=False)
                    if stat.S_ISLNK(st.st_mode):
                        kind, size = "link", 0
                    elif stat.S_ISDIR(st.st_mode):
                        kind, size = "dir", 0
                    else:
                        kind, size = "file", st.st_size
                    out.append((entry.name, kind, size))
        return sorted(out)

    def files(
        self, path: str, wanted: Callable[[str], bool] = lambda name: True
    ) -> Iterator[tuple[str, bytes]]:
        """Every regular file under ``path`` whose name is ``wanted``
        (workspace-relative path, content), walked by descriptor: no symlink is
        followed, not even one swapped in while the walk runs. Only wanted
        files are read."""
        rel = self.relative(path)
        parent, name = (rel.parent, rel.name) if rel != PurePosixPath(".") else (rel, "")
        with self.directory(parent) as d:
            if name:
                try:
                    st = os.stat(name, dir_fd=d, follow_symlinks=False)
                except OSError as exc:
                    raise self._error(path, exc) from exc
                if stat.S_ISREG(st.st_mode):
                    yield str(rel), self.read_file(str(rel))
                    return
            top = name or "."
            for here, dirs, names, dfd in os.fwalk(top, dir_fd=d, follow_symlinks=False):
                dirs.sort()
                dirs[:] = [x for x in dirs if x not in SKIP_DIRS]
                for fname in sorted(names):
                    if not wanted(fname):
                        continue
                    try:
                        fd = os.open(fname, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
                    except OSError:
                        continue  # a symlink, or gone
                    with os.fdopen(fd, "rb") as f:
                        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                            continue
                        data = f.read()
                    yield os.path.normpath(str(parent / here / fname)), data


class Transaction:
    """Workspace changes made one at a time, each with its undo, so that a
    commit is all or nothing. What a change replaces or removes is moved aside
    (renamed into a private directory at the workspace root: the same file
    system, so nothing is copied) and dropped at ``finish``; ``rollback`` puts
    everything back in reverse order. Every step is descriptor-relative, like
    the rest of ``Workspace``: none follows a symlink."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._undo: list[tuple[str, Callable[[], object]]] = []
        self._token = secrets.token_hex(6)
        self._aside = f".luminaguard-commit-{self._token}"
        self._count = 0
        self._aside_fd: int | None = None

    # --- the changes -------------------------------------------------------

    def remove(self, path: str) -> None:
        """Remove a file, a link or an (already emptied) directory."""
        parent, name = self.ws._split(path)
        with self.ws.directory(parent) as d:
            try:
                st = os.stat(name, dir_fd=d, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    os.rmdir(name, dir_fd=d)
                    self._done(path, lambda: self._remake_dir(path, st))
                    return
            except OSError as exc:
                raise self.ws._error(path, exc) from exc
            self._move_aside(d, parent, name, path)

    def make_dir(self, path: str, mode: int) -> None:
        """Create a directory that must not exist yet; its mode set on its descriptor."""
        parent, name = self.ws._split(path)
        with self.ws.directory(parent) as d:
            try:
                os.mkdir(name, 0o700, dir_fd=d)
                self._done(path, lambda: self._rmdir(path))
                fd = os.open(name, DIR_FLAGS, dir_fd=d)
            except OSError as exc:
                raise self.ws._error(path, exc) from exc
        try:
            os.fchmod(fd, mode & 0o777)
        finally:
            os.close(fd)

    def write(self, path: str, data: bytes, mode: int | None = None) -> None:
        """Create or replace a file; a replaced one keeps its mode (unless
        ``mode`` says otherwise) and its owner, and is only moved aside."""

        def make(d: int, temp: str, old: os.stat_result | None) -> None:
            if old is not None and stat.S_ISLNK(old.st_mode):
                raise WorkspacePathError(
                    f"{path} is a symlink, which host-side writes never follow or replace"
                )
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                fd = os.open(temp, flags, 0o600, dir_fd=d)
            except OSError as exc:
                raise self.ws._error(path, exc) from exc
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                keep = stat.S_IMODE(old.st_mode) if old is not None else 0o644
                os.fchmod(f.fileno(), (keep if mode is None else mode) & 0o777)
                if old is not None and os.geteuid() == 0:
                    os.fchown(f.fileno(), old.st_uid, old.st_gid)

        self._place(path, make)

    def symlink(self, path: str, target: str) -> None:
        """Make ``path`` a symlink to ``target`` (a file or link there is moved aside)."""
        self._place(path, lambda d, temp, old: os.symlink(target, temp, dir_fd=d))

    def chmod(self, path: str, mode: int) -> None:
        """Set the permission bits of ``path`` on its descriptor; a symlink is left alone."""
        before = self._set_mode(path, mode)
        if before is not None:
            self._done(path, lambda: self._set_mode(path, before))

    # --- finishing ---------------------------------------------------------

    def rollback(self) -> list[str]:
        """Undo every change, newest first; the paths that could not be put back."""
        left = []
        while self._undo:
            path, undo = self._undo.pop()
            try:
                undo()
            except (OSError, ToolError):
                left.append(path)
        self._drop_aside()
        return sorted(set(left))

    def finish(self) -> None:
        """Keep the changes: drop what was moved aside."""
        self._undo.clear()
        self._drop_aside()

    # --- the steps ---------------------------------------------------------

    def _done(self, path: str, undo: Callable[[], object]) -> None:
        self._undo.append((path, undo))

    def _temp_name(self) -> str:
        self._count += 1
        return f".luminaguard-new-{self._token}-{self._count}"

    def _existing(self, d: int, name: str, path: str) -> os.stat_result | None:
        try:
            st = os.stat(name, dir_fd=d, follow_symlinks=False)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self.ws._error(path, exc) from exc
        if stat.S_ISDIR(st.st_mode):
            raise ToolError(f"{path} is a directory")
        return st

    def _place(self, path: str, make: Callable[[int, str, os.stat_result | None], None]) -> None:
        """Make a new entry under a temporary name beside ``path`` (``make(dir,
        temp, what is there now)``), then move what is there aside and rename
        the new one into place; a failure anywhere leaves no temporary behind."""
        parent, name = self.ws._split(path)
        with self.ws.directory(parent, create=True) as d:
            old = self._existing(d, name, path)
            temp = self._temp_name()
            try:
                make(d, temp, old)
                self._put_in_place(d, parent, temp, name, path, old)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp, dir_fd=d)
                raise

    def _put_in_place(
        self,
        d: int,
        parent: PurePosixPath,
        temp: str,
        name: str,
        path: str,
        old: os.stat_result | None,
    ) -> None:
        if old is not None:
            self._move_aside(d, parent, name, path)
        try:
            os.rename(temp, name, src_dir_fd=d, dst_dir_fd=d)
        except OSError as exc:
            raise self.ws._error(path, exc) from exc
        self._done(path, lambda: self._unlink(path))

    def _move_aside(self, d: int, parent: PurePosixPath, name: str, path: str) -> None:
        self._count += 1
        kept = str(self._count)
        with self._aside_dir() as aside:
            try:
                os.rename(name, kept, src_dir_fd=d, dst_dir_fd=aside)
            except OSError as exc:
                raise self.ws._error(path, exc) from exc

        def put_back() -> None:
            with self._aside_dir() as aside, self.ws.directory(parent) as back:
                os.rename(kept, name, src_dir_fd=aside, dst_dir_fd=back)

        self._done(path, put_back)

    @contextlib.contextmanager
    def _aside_dir(self) -> Iterator[int]:
        """The directory things are moved aside to: made at first use and held
        open for the transaction (one descriptor, not a walk per file)."""
        if self._aside_fd is None:
            with self.ws.directory(PurePosixPath(".")) as root:
                os.mkdir(self._aside, 0o700, dir_fd=root)
                self._aside_fd = os.open(self._aside, DIR_FLAGS, dir_fd=root)
        yield self._aside_fd

    def _drop_aside(self) -> None:
        if self._aside_fd is not None:
            os.close(self._aside_fd)
            self._aside_fd = None
            with self.ws.directory(PurePosixPath(".")) as root:
                shutil.rmtree(self._aside, dir_fd=root, ignore_errors=True)

    def _unlink(self, path: str) -> None:
        parent, name = self.ws._split(path)
        with self.ws.directory(parent) as d:
            os.unlink(name, dir_fd=d)

    def _rmdir(self, path: str) -> None:
        parent, name = self.ws._split(path)
        with self.ws.directory(parent) as d:
            os.rmdir(name, dir_fd=d)

    def _remake_dir(self, path: str, st: os.stat_result) -> None:
        parent, name = self.ws._split(path)
        with self.ws.directory(parent) as d:
            os.mkdir(name, 0o700, dir_fd=d)
            fd = os.open(name, DIR_FLAGS, dir_fd=d)
        try:
            os.fchmod(fd, stat.S_IMODE(st.st_mode))
            if os.geteuid() == 0:
                os.fchown(fd, st.st_uid, st.st_gid)
        finally:
            os.close(fd)

    def _set_mode(self, path: str, mode: int) -> int | None:
        """Set the permission bits on the opened file; its bits before (None for a symlink)."""
        parent, name = self.ws._split(path)
        with self.ws.directory(parent) as d:
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=d)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    return None
                raise self.ws._error(path, exc) from exc
        try:
            before = stat.S_IMODE(os.fstat(fd).st_mode)
            os.fchmod(fd, mode & 0o777)
        finally:
            os.close(fd)
        return before


SKIP_DIRS = {".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", ".luminaguard"}


class WorkspaceFiles:
    """The ``Sandbox`` protocol's file operations, done on the host through
    ``self.ws`` (never following a path out of it): shared by the backends."""

    ws: Workspace

    def read_file(self, path: str) -> bytes:
        return self.ws.read_file(path)

    def write_file(self, path: str, data: bytes) -> None:
        self.ws.write_file(path, data)

    def delete_file(self, path: str) -> None:
        self.ws.delete_file(path)

    def list_dir(self, path: str) -> list[tuple[str, str, int]]:
        return self.ws.list_dir(path)
