"""Sandbox latency: warm/cold acquire+exec beside a plain subprocess, and the
cost of a copy-on-write preview over a plain exec, at 100 and 10,000 files.

    python bench/sandbox_bench.py [--n 50] [--json]

Everything is measured in one run. The preview command changes one file, so
what is measured is the overlay and the effect scan, not the command.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from luminaguard.config import SandboxSettings
from luminaguard.sandbox.bench import pool_bench
from luminaguard.sandbox.bwrap import Layout, launch
from luminaguard.sandbox.preview import discard, run_preview
from luminaguard.stats import percentiles, series_line

COMMAND = ["/bin/sh", "-c", "echo changed >> file-0.txt"]


def make_workspace(root: Path, files: int) -> Path:
    for i in range(files):
        sub = root / f"d{i // 100}"
        sub.mkdir(exist_ok=True)
        (sub / f"f{i}.txt").write_text(f"file {i}\n")
    (root / "file-0.txt").write_text("start\n")
    return root


async def exec_vs_preview(settings: SandboxSettings, files: int, n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"lg-bench-{files}-") as tmp:
        ws = make_workspace(Path(tmp), files)
        exec_ms, preview_ms = [], []
        for _ in range(n):
            t = time.perf_counter()
            await launch(
                Layout(ws),
                settings,
                ["/bin/sh", "-c", "cat file-0.txt > /dev/null"],
                stdin=None,
                timeout_s=30,
            )
            exec_ms.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            p = await run_preview(ws, settings, COMMAND)
            preview_ms.append((time.perf_counter() - t) * 1000)
            assert [m.path for m in p.effects.modified] == ["file-0.txt"], p.effects
            discard(p.handle)
    e, p_ = percentiles(exec_ms), percentiles(preview_ms)
    return {
        "files": files,
        "exec": e,
        "preview": p_,
        "overhead_p50_ms": round(statistics.median(preview_ms) - statistics.median(exec_ms), 2),
    }


async def main(n: int) -> dict[str, Any]:
    settings = SandboxSettings(pool_size=0)
    pool = await pool_bench(settings, n)
    previews = [
        await exec_vs_preview(settings, files, max(10, n // 2)) for files in (10, 100, 10_000)
    ]
    return {"pool": pool, "preview": previews}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(main(args.n))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        pool = result["pool"]
        for name in ("baseline_subprocess", "cold", "warm"):
            print(series_line(name, pool[name]))
        print(
            f"ratios over baseline (p50): cold {pool['ratios_p50']['cold']}x, warm {pool['ratios_p50']['warm']}x"
        )
        for r in result["preview"]:
            print(
                f"preview, {r['files']:>6} files: exec p50 {r['exec']['p50_ms']:6.2f} ms, "
                f"preview p50 {r['preview']['p50_ms']:6.2f} ms (p95 {r['preview']['p95_ms']:6.2f}), "
                f"overhead {r['overhead_p50_ms']:5.2f} ms"
            )
