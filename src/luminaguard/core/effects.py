"""What a previewed command did to the workspace, as data.

The sandbox observes it (a copy-on-write layer's upper directory), the policy
classifies it, the Diff Card shows it, and a commit applies exactly it. It
crosses process and machine boundaries (a fleet worker carries out an
approval another decided), so it round-trips through plain dicts.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

from luminaguard.core.text import cut


@dataclass(frozen=True)
class Modified:
    path: str
    diff: str
    binary: bool = False
    size_before: int = 0
    size_after: int = 0


@dataclass
class Effects:
    """What a previewed command did."""

    created: list[str] = field(default_factory=list)
    created_dirs: list[str] = field(default_factory=list)
    modified: list[Modified] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    mode_changes: list[dict[str, Any]] = field(default_factory=list)
    symlinks: list[dict[str, Any]] = field(default_factory=list)
    network: list[dict[str, Any]] = field(default_factory=list)
    executables: list[dict[str, Any]] = field(default_factory=list)
    """Created files with an exec bit, and their mode: the only exec bits a commit applies."""
    unobserved: list[str] = field(default_factory=list)
    """Effects that could not be observed, or were only suspected from the output."""

    def is_empty(self) -> bool:
        return not (
            self.created
            or self.created_dirs
            or self.modified
            or self.deleted
            or self.mode_changes
            or self.symlinks
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Effects:
        return cls(
            created=list(d.get("created", [])),
            created_dirs=list(d.get("created_dirs", [])),
            modified=[Modified(**m) for m in d.get("modified", [])],
            deleted=list(d.get("deleted", [])),
            mode_changes=[dict(m) for m in d.get("mode_changes", [])],
            symlinks=[dict(s) for s in d.get("symlinks", [])],
            network=[dict(n) for n in d.get("network", [])],
            executables=[dict(x) for x in d.get("executables", [])],
            unobserved=list(d.get("unobserved", [])),
        )


DIFF_LIMIT = 64 * 1024
"""A card shows at most this much of one diff; the rest is counted (``core.text.cut``)."""
DIFF_INPUT_LIMIT = 8 * 1024 * 1024
"""Texts larger than this together are not diffed line by line: the card says
their sizes and hashes and shows the start of the new text."""


def unified_diff(old: str, new: str, rel: str, limit: int = DIFF_LIMIT) -> str:
    """A unified diff of two texts of the workspace file ``rel`` (git's a/ b/ names),
    at most ``limit`` characters of it, with a count of what was cut."""
    if len(old) + len(new) > DIFF_INPUT_LIMIT:
        sha = [
            hashlib.sha256(t.encode("utf-8", "surrogatepass")).hexdigest()[:12] for t in (old, new)
        ]
        head = "".join("+" + line for line in new[: limit + 1].splitlines(keepends=True))
        return cut(
            f"--- a/{rel}\n+++ b/{rel}\n"
            f"[too large to diff: {len(old):,} → {len(new):,} characters, sha256 {sha[0]} → {sha[1]}; "
            "the new content begins:]\n" + head,
            limit,
        )
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), f"a/{rel}", f"b/{rel}"
    )
    diff = "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )
    return cut(diff, limit, "characters of the diff")
