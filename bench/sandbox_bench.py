"""Sandbox latency: warm/cold acquire+exec beside a plain subprocess, and the
cost of a copy-on-write preview over a plain exec, at 100 and 10,000 files,
and the cost of a preview's commit (one all-or-nothing transaction) beside
plain in-place writes of the same contents.

    python bench/sandbox_bench.py [--n 50] [--json]

Everything is measured in one run. The preview command changes one file, so
what is measured is the overlay and the effect scan, not the command.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from luminaguard.config import SandboxSettings
from luminaguard.sandbox.bench import SERIES, pool_bench
from luminaguard.sandbox.bwrap import Layout, launch
from luminaguard.sandbox.preview import commit, discard, run_preview
from luminaguard.stats import bench_cli, percentiles, report

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


async def commit_vs_plain_writes(settings: SandboxSettings, files: int, n: int) -> dict[str, Any]:
    """A preview's commit (one transaction: each file written new and renamed
    into place, the old one moved aside, all undone on failure) beside plain
    in-place writes of the same contents to a copy, alternating which goes first."""
    import shutil

    with tempfile.TemporaryDirectory(prefix=f"lg-bench-commit-{files}-") as tmp:
        (Path(tmp) / "ws").mkdir()
        ws = make_workspace(Path(tmp) / "ws", files)
        copy = Path(tmp) / "copy"
        shutil.copytree(ws, copy)
        names = sorted(str(p.relative_to(ws)) for p in ws.rglob("f*.txt"))[:files]
        script = "for f in " + " ".join(names) + "; do echo x >> $f; done"
        commit_ms, plain_ms = [], []
        for i in range(n):
            p = await run_preview(ws, settings, ["/bin/sh", "-c", script])
            assert len(p.effects.modified) == len(names), p.effects
            data = {
                m.path: (Path(p.handle) / "upper" / m.path).read_bytes() for m in p.effects.modified
            }

            order = ("plain", "commit") if i % 2 else ("commit", "plain")
            for step in order:
                t = time.perf_counter()
                if step == "plain":
                    for rel, content in data.items():
                        with open(copy / rel, "wb") as f:
                            f.write(content)
                    plain_ms.append((time.perf_counter() - t) * 1000)
                else:
                    commit(p.handle, ws)
                    commit_ms.append((time.perf_counter() - t) * 1000)
    c, b = percentiles(commit_ms), percentiles(plain_ms)
    return {
        "files": len(names),
        "plain_writes": b,
        "commit": c,
        "ratio_p50": round(statistics.median(commit_ms) / statistics.median(plain_ms), 2),
    }


async def main(n: int) -> dict[str, Any]:
    settings = SandboxSettings(pool_size=0)
    pool = await pool_bench(settings, n)
    previews = [
        await exec_vs_preview(settings, files, max(10, n // 2)) for files in (10, 100, 10_000)
    ]
    commits = [await commit_vs_plain_writes(settings, files, max(10, n // 2)) for files in (1, 100)]
    return {"pool": pool, "preview": previews, "commit": commits}


def show(result: dict[str, Any]) -> None:
    print(report(result["pool"], SERIES))
    for r in result["preview"]:
        print(
            f"preview, {r['files']:>6} files: exec p50 {r['exec']['p50_ms']:6.2f} ms, "
            f"preview p50 {r['preview']['p50_ms']:6.2f} ms (p95 {r['preview']['p95_ms']:6.2f}), "
            f"overhead {r['overhead_p50_ms']:5.2f} ms"
        )
    for r in result["commit"]:
        print(
            f"commit, {r['files']:>4} modified files: plain writes p50 "
            f"{r['plain_writes']['p50_ms']:6.2f} ms, commit p50 {r['commit']['p50_ms']:6.2f} ms "
            f"(p95 {r['commit']['p95_ms']:6.2f}), ratio {r['ratio_p50']}x"
        )


if __name__ == "__main__":
    bench_cli(lambda n: asyncio.run(main(n)), 50, show)
