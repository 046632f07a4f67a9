"""Path confinement in the workspace's own terms: lexical, no I/O.

Paths from the model are relative to the workspace root; a leading ``/`` is
read as the root too, since inside every sandbox the workspace is
``/workspace``. What a path *resolves* to on the host (symlinks) is the
sandbox's business (``sandbox/workspace.py``); the policy sees the workspace
only through ``WorkspaceView``.
"""

from __future__ import annotations

import posixpath
from pathlib import PurePosixPath
from typing import Protocol

from luminaguard.errors import WorkspacePathError

SANDBOX_ROOT = PurePosixPath("/workspace")


def relative(path: str) -> PurePosixPath:
    """The workspace-relative form of ``path``; refuses anything that climbs out."""
    if not path or "\x00" in path:
        raise WorkspacePathError(f"invalid path {path!r}")
    p = PurePosixPath(path)
    if p.is_absolute():
        try:
            p = p.relative_to(SANDBOX_ROOT)
        except ValueError:
            raise WorkspacePathError(f"{path} is outside the workspace") from None
    parts: list[str] = []
    for part in p.parts:
        if part == "..":
            if not parts:
                raise WorkspacePathError(f"{path} is outside the workspace")
            parts.pop()
        elif part != ".":
            parts.append(part)
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def points_outside(rel: str, target: str) -> bool:
    """Whether a symlink at workspace path ``rel`` with ``target`` leads out of the workspace."""
    parts = PurePosixPath(target).parts
    # A ".." after a named part climbs out of wherever that part leads, and it
    # may itself be a link (`a/../x` with `a` -> /etc is /x): it is not judged
    # lexically, it counts as leaving. /workspace/../etc/passwd leaves too.
    named = False
    for part in parts[1:] if PurePosixPath(target).is_absolute() else parts:
        if part == ".." and named:
            return True
        named = named or part not in ("..", ".")
    if PurePosixPath(target).is_absolute():
        target = posixpath.normpath(target)
        return not (target == str(SANDBOX_ROOT) or target.startswith(f"{SANDBOX_ROOT}/"))
    depth = 0
    for part in (PurePosixPath(rel).parent / target).parts:
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part != ".":
            depth += 1
    return False


class WorkspaceView(Protocol):
    """What the classifier may ask about a workspace (reads only)."""

    def exists(self, path: str) -> bool:
        """Whether ``path`` names something inside the workspace."""
        ...

    def is_inside(self, path: str) -> bool:
        """Whether ``path`` resolves (symlinks followed) inside the workspace."""
        ...
