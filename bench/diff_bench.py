"""A card's diff of a long file: `unified_diff` (anchored on unique lines
past `ANCHOR_LINES`) beside difflib's own `unified_diff`, taking turns.

    python bench/diff_bench.py [--n 3] [--json]

Three files: 20,000 lines with 2,000 scattered one-line changes (what a
formatter or a search-and-replace leaves), the same with one change, and a
short file (500 lines, 50 changes: below the anchoring threshold, difflib's
own path).
"""

from __future__ import annotations

import difflib
import time
from typing import Any

from luminaguard.core.effects import unified_diff
from luminaguard.stats import bench_cli, percentiles, series_line


def cases() -> dict[str, tuple[str, str]]:
    long = "".join(f"line {i}\n" for i in range(20_000))
    short = "".join(f"line {i}\n" for i in range(500))
    return {
        "20k_lines_2000_changes": (long, long.replace("0\n", "0 changed\n")),
        "20k_lines_1_change": (long, long.replace("line 5\n", "line five\n")),
        "500_lines_50_changes": (short, short.replace("0\n", "0 changed\n")),
    }


def ms(work: Any, *args: Any) -> float:
    started = time.perf_counter()
    work(*args)
    return (time.perf_counter() - started) * 1000


def ours(old: str, new: str) -> str:
    return unified_diff(old, new, "f", limit=10**9)


def difflib_own(old: str, new: str) -> str:
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    return "".join(difflib.unified_diff(a, b, "a/f", "b/f"))


def main(n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (old, new) in cases().items():
        mine: list[float] = []
        plain: list[float] = []
        for _ in range(n):  # taking turns: the machine's load moves
            mine.append(ms(ours, old, new))
            plain.append(ms(difflib_own, old, new))
        out[name] = {
            "unified_diff": percentiles(mine),
            "baseline_difflib": percentiles(plain),
            "ratio_p50": round(percentiles(mine)["p50_ms"] / percentiles(plain)["p50_ms"], 3),
            "same_diff": ours(old, new) == difflib_own(old, new),
        }
    return out


def show(result: dict[str, Any]) -> None:
    for name, r in result.items():
        print(name)
        print("  " + series_line("unified_diff", r["unified_diff"]))
        print("  " + series_line("baseline_difflib", r["baseline_difflib"]))
        same = "the same diff" if r["same_diff"] else "another diff of the same change"
        print(f"  ratio (p50): {r['ratio_p50']}x ({same} as difflib's)")


if __name__ == "__main__":
    bench_cli(main, 3, show)
