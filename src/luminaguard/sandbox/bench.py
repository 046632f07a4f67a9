"""Acquire+exec latency of the sandbox, cold and warm, beside a plain subprocess.

All three are measured in the same run, on the same machine state:

- ``baseline_subprocess``: ``subprocess.run(["/bin/true"])``;
- ``cold``: a fresh bubblewrap sandbox per command (``launch``);
- ``warm``: a command in an idle sandbox of the warm pool (acquire + exec).

For ``warm`` each sample waits (untimed) for the pool to have an idle
sandbox again, so it measures acquiring a ready one, not the refill.
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from luminaguard.config import SandboxSettings
from luminaguard.stats import percentiles


async def pool_bench(settings: SandboxSettings, n: int) -> dict[str, Any]:
    from luminaguard.sandbox.bwrap import BwrapSandbox, Layout, ensure_self_test, launch
    from luminaguard.sandbox.pool import WarmPool

    await ensure_self_test(settings)
    base: list[float] = []
    cold: list[float] = []
    warm: list[float] = []
    with tempfile.TemporaryDirectory(prefix="lg-bench-") as tmp:
        ws = Path(tmp)
        layout = BwrapSandbox(ws, settings).layout
        pool = WarmPool(Layout(ws, "rw", layout.network), settings, size=1)
        try:
            # One phase each, so the pool's background refills never overlap
            # the baseline or the cold samples.
            for _ in range(n):
                t = time.perf_counter()
                subprocess.run(["/bin/true"], check=True)
                base.append((time.perf_counter() - t) * 1000)
            for _ in range(n):
                t = time.perf_counter()
                result, _ = await launch(layout, settings, ["/bin/true"], stdin=None, timeout_s=30)
                cold.append((time.perf_counter() - t) * 1000)
                assert result.exit_code == 0, result.stderr
            pool.fill()
            for _ in range(n):
                await _until_idle(pool)
                t = time.perf_counter()
                result = await pool.run(["/bin/true"])
                warm.append((time.perf_counter() - t) * 1000)
                assert result.exit_code == 0, result.stderr
        finally:
            stats = pool.stats_dict()
            pool.close()
    out: dict[str, Any] = {
        "baseline_subprocess": percentiles(base),
        "cold": percentiles(cold),
        "warm": percentiles(warm),
        "pool": stats,
    }
    b = out["baseline_subprocess"]["p50_ms"]
    out["ratios_p50"] = {
        "cold": round(out["cold"]["p50_ms"] / b, 2),
        "warm": round(out["warm"]["p50_ms"] / b, 2),
    }
    return out


async def _until_idle(pool: Any, limit_s: float = 10.0) -> None:
    if not await asyncio.to_thread(pool.wait_idle, 1, limit_s):
        raise TimeoutError(f"the warm pool did not refill within {limit_s} s")
