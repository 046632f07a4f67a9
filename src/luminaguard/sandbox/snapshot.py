"""What a command changed in the workspace, by comparing stat snapshots.

A stop-gap for reporting, not the preview: it observes changes after they
happened and costs a walk of the workspace. The copy-on-write preview
replaces it where the person must decide before anything changes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

MAX_FILES = 50_000

Stamp = tuple[int, int, int]  # size, mtime_ns, mode


@dataclass(frozen=True)
class Changes:
    created: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    complete: bool = True

    def __bool__(self) -> bool:
        return bool(self.created or self.modified or self.deleted)

    def to_dict(self) -> dict[str, object]:
        return {
            "created": self.created,
            "modified": self.modified,
            "deleted": self.deleted,
            "complete": self.complete,
        }

    def summary(self) -> str:
        if not self.complete:
            return "changes not tracked (workspace too large)"
        parts = [f"+ {p}" for p in self.created]
        parts += [f"~ {p}" for p in self.modified]
        parts += [f"- {p}" for p in self.deleted]
        return "\n".join(parts) if parts else "no files changed"


def snapshot(root: Path) -> dict[str, Stamp] | None:
    """``relative path -> (size, mtime_ns, mode)``, or ``None`` past ``MAX_FILES``."""
    out: dict[str, Stamp] = {}
    stack = [root]
    while stack:
        here = stack.pop()
        try:
            entries = list(os.scandir(here))
        except OSError:
            continue
        for entry in entries:
            st = entry.stat(follow_symlinks=False)
            rel = os.path.relpath(entry.path, root)
            out[rel] = (st.st_size, st.st_mtime_ns, st.st_mode)
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
            if len(out) > MAX_FILES:
                return None
    return out


def diff(before: dict[str, Stamp] | None, after: dict[str, Stamp] | None) -> Changes:
    if before is None or after is None:
        return Changes(complete=False)
    import stat

    def is_dir(s: Stamp) -> bool:
        return stat.S_ISDIR(s[2])

    created = sorted(p for p, s in after.items() if p not in before and not is_dir(s))
    deleted = sorted(p for p, s in before.items() if p not in after and not is_dir(s))
    modified = sorted(
        p for p, s in after.items() if p in before and before[p] != s and not is_dir(s)
    )
    return Changes(created, modified, deleted)
