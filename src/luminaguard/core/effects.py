"""What a previewed command did to the workspace, as data.

The sandbox observes it (a copy-on-write layer's upper directory), the policy
classifies it, the Diff Card shows it, and a commit applies exactly it. It
crosses process and machine boundaries (a fleet worker carries out an
approval another decided), so it round-trips through plain dicts.
"""

from __future__ import annotations

import bisect
import difflib
import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator
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
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    if len(a) + len(b) <= ANCHOR_LINES:
        lines: Iterable[str] = difflib.unified_diff(a, b, f"a/{rel}", f"b/{rel}")
    else:
        lines = _unified(_Anchored(a, b), f"a/{rel}", f"b/{rel}")
    diff = "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )
    return cut(diff, limit, "characters of the diff")


ANCHOR_LINES = 4000
"""Texts of more lines than this together are diffed by ``_Anchored``: difflib
alone takes seconds to minutes on a long file with many scattered changes."""


class _Anchored(difflib.SequenceMatcher[str]):
    """difflib's matcher anchored first on the lines found exactly once in
    each text, in the longest run of them in the same order (patience diff);
    difflib matches only the gaps between anchors. Near linear where difflib
    alone is quadratic in the number of changes."""

    a: list[str]
    b: list[str]
    matching_blocks: list[difflib.Match] | None
    """difflib's own cache of the blocks (``set_seqs`` empties it)."""

    def __init__(self, a: list[str], b: list[str]) -> None:
        super().__init__(None, a, b, autojunk=False)

    def get_matching_blocks(self) -> list[difflib.Match]:
        if self.matching_blocks is not None:
            return self.matching_blocks
        a, b = self.a, self.b
        # What both begin and end with matches as it is; the rest is anchored.
        head = 0
        while head < min(len(a), len(b)) and a[head] == b[head]:
            head += 1
        tail = 0
        while tail < min(len(a), len(b)) - head and a[-1 - tail] == b[-1 - tail]:
            tail += 1
        a_end, b_end = len(a) - tail, len(b) - tail
        mid_a, mid_b = a[head:a_end], b[head:b_end]
        count_a, count_b = Counter(mid_a), Counter(mid_b)
        only_in_b = {line: head + j for j, line in enumerate(mid_b) if count_b[line] == 1}
        pairs = [
            (head + i, only_in_b[line])
            for i, line in enumerate(mid_a)
            if count_a[line] == 1 and line in only_in_b
        ]
        blocks: list[tuple[int, int, int]] = [(0, 0, head)] if head else []
        i0 = j0 = head
        for i, j in [*_increasing(pairs), (a_end, b_end)]:
            if i > i0 and j > j0:
                gap = difflib.SequenceMatcher(None, a[i0:i], b[j0:j], autojunk=False)
                blocks += [(i0 + x, j0 + y, n) for x, y, n in gap.get_matching_blocks()[:-1]]
            if i < a_end:
                blocks.append((i, j, 1))
            i0, j0 = i + 1, j + 1
        if tail:
            blocks.append((a_end, b_end, tail))
        merged: list[tuple[int, int, int]] = []
        for x, y, n in blocks:
            if merged and merged[-1][0] + merged[-1][2] == x and merged[-1][1] + merged[-1][2] == y:
                merged[-1] = (merged[-1][0], merged[-1][1], merged[-1][2] + n)
            else:
                merged.append((x, y, n))
        found = [difflib.Match(*m) for m in [*merged, (len(a), len(b), 0)]]
        self.matching_blocks = found
        return found


def _increasing(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The longest subsequence of ``pairs`` (increasing in their first) that
    also increases in their second (patience sorting, O(n log n))."""
    tops: list[int] = []  # the smallest last j of an increasing run of each length
    ends: list[int] = []  # the index in pairs of that run's last pair
    before = [-1] * len(pairs)
    for k, (_, j) in enumerate(pairs):
        at = bisect.bisect_left(tops, j)
        if at == len(tops):
            tops.append(j)
            ends.append(k)
        else:
            tops[at], ends[at] = j, k
        before[k] = ends[at - 1] if at else -1
    run: list[tuple[int, int]] = []
    k = ends[-1] if ends else -1
    while k != -1:
        run.append(pairs[k])
        k = before[k]
    return run[::-1]


def _unified(matcher: _Anchored, fromfile: str, tofile: str) -> Iterator[str]:
    """``difflib.unified_diff``'s lines, from ``matcher``'s opcodes (3 lines of context)."""
    a, b = matcher.a, matcher.b
    for k, group in enumerate(matcher.get_grouped_opcodes(3)):
        if k == 0:
            yield f"--- {fromfile}\n"
            yield f"+++ {tofile}\n"
        first, last = group[0], group[-1]
        yield f"@@ -{_range(first[1], last[2])} +{_range(first[3], last[4])} @@\n"
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                yield from (" " + line for line in a[i1:i2])
                continue
            if tag in ("replace", "delete"):
                yield from ("-" + line for line in a[i1:i2])
            if tag in ("replace", "insert"):
                yield from ("+" + line for line in b[j1:j2])


def _range(start: int, stop: int) -> str:
    """A unified diff's range, as difflib writes it."""
    length = stop - start
    beginning = start + 1 if length else start
    return str(beginning) if length == 1 else f"{beginning},{length}"
