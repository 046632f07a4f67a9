"""File operations on a workspace that never leave it.

Paths from the model are relative to the workspace root (a leading ``/`` is
read as the root too, since inside the sandbox the workspace is ``/workspace``).
Every path is resolved and must stay inside the root; the final component is
opened with ``O_NOFOLLOW`` so a symlink swapped in after the check is refused
rather than followed. This is not a sandbox by itself: it keeps the host-side
helpers honest, commands still run inside the sandbox.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from luminaguard.core.paths import SANDBOX_ROOT, relative
from luminaguard.errors import ToolError, WorkspacePathError

__all__ = ["SANDBOX_ROOT", "Workspace"]


class Workspace:
    """A directory the agent works in (a ``core.paths.WorkspaceView`` for the policy)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        if not self.root.is_dir():
            raise ToolError(f"workspace {root} is not a directory")

    def relative(self, path: str) -> PurePosixPath:
        """The workspace-relative form of ``path``; refuses anything that climbs out."""
        return relative(path)

    def resolve(self, path: str) -> Path:
        """The host path of ``path``, with symlinks resolved; must stay inside the root."""
        host = (self.root / self.relative(path)).resolve()
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

    def read_file(self, path: str) -> bytes:
        host = self.resolve(path)
        try:
            fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ToolError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise ToolError(f"{path} is a directory") from None
        except OSError as exc:
            raise ToolError(f"{path}: {exc.strerror}") from exc
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            os.close(fd)
            raise ToolError(f"{path} is a directory")
        with os.fdopen(fd, "rb") as f:
            return f.read()

    def write_file(self, path: str, data: bytes) -> None:
        host = self.resolve(path)
        if host == self.root:
            raise ToolError(f"{path} is the workspace itself")
        host.parent.mkdir(parents=True, exist_ok=True)
        # Re-check after mkdir: a parent could have been a symlink created meanwhile.
        self.resolve(path)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(host, flags, 0o644)
        except IsADirectoryError:
            raise ToolError(f"{path} is a directory") from None
        except OSError as exc:
            raise ToolError(f"{path}: {exc.strerror}") from exc
        with os.fdopen(fd, "wb") as f:
            f.write(data)

    def delete_file(self, path: str) -> None:
        rel = self.relative(path)
        if rel == PurePosixPath("."):
            raise ToolError("refusing to delete the workspace itself")
        # Resolve the parent only: deleting a symlink removes the link, not its target.
        parent = self.resolve(str(rel.parent))
        target = parent / rel.name
        try:
            if target.is_dir() and not target.is_symlink():
                raise ToolError(f"{path} is a directory; delete_file removes files only")
            target.unlink()
        except FileNotFoundError:
            raise ToolError(f"{path}: no such file") from None
        except OSError as exc:
            raise ToolError(f"{path}: {exc.strerror}") from exc

    def list_dir(self, path: str) -> list[tuple[str, str, int]]:
        host = self.resolve(path)
        if not host.is_dir():
            raise ToolError(f"{path}: not a directory")
        out = []
        with os.scandir(host) as it:
            for entry in it:
                if entry.is_symlink():
                    kind, size = "link", 0
                elif entry.is_dir():
                    kind, size = "dir", 0
                else:
                    kind, size = "file", entry.stat().st_size
                out.append((entry.name, kind, size))
        return sorted(out)
