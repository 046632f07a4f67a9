"""Acquire+exec latency of a sandbox backend, cold and warm, beside a plain subprocess.

All three are measured in the same run, on the same machine state:

- ``baseline_subprocess``: ``subprocess.run(["/bin/true"])``;
- ``cold``: a fresh sandbox per command (``launch``), back to back;
- ``cold_spaced``: the same after an idle gap (``GAP_S``, untimed), as real
  tool calls come: some kernel costs (cgroup v1's RCU wait on joining) only
  show when calls are spaced;
- ``preview``: a copy-on-write preview of ``/bin/true`` on a 100-file
  workspace (the overlay, the run and the effect scan), discarded untimed;
- ``warm``: a command in an idle sandbox of the warm pool (acquire + exec).

The baseline, cold, cold_spaced and preview samples take turns, so drift in
the machine's speed lands on all alike. For ``warm`` each sample waits
(untimed) for the pool to have an idle sandbox again, so it measures acquiring
a ready one, not the refill; it runs last, so its background refills never
overlap the other series.
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from luminaguard.config import SandboxSettings
from luminaguard.stats import percentiles, ratios_p50

GAP_S = 0.25
PREVIEW_FILES = 100
SERIES = ("baseline_subprocess", "cold", "cold_spaced", "preview", "warm")
"""What ``pool bench`` measures, on every backend."""


async def pool_bench(settings: SandboxSettings, n: int, backend: str = "bwrap") -> dict[str, Any]:
    """The series of one backend: bwrap, or another built on its layout (gvisor).
    (The micro-VM's, with its own pool, are ``vm.bench.microvm_pool_bench``.)"""
    from luminaguard.sandbox import backend_class
    from luminaguard.sandbox.bwrap import Layout, ensure_self_test, launch
    from luminaguard.sandbox.pool import WarmPool
    from luminaguard.sandbox.preview import discard, run_preview

    cls = backend_class(backend)
    spawner = cls.spawner
    await ensure_self_test(settings, spawner)
    series: dict[str, list[float]] = {name: [] for name in SERIES}

    def timed(name: str, started: float) -> None:
        series[name].append((time.perf_counter() - started) * 1000)

    with tempfile.TemporaryDirectory(prefix="lg-bench-") as tmp:
        ws = Path(tmp) / "ws"
        ws.mkdir()
        files = Path(tmp) / "files"
        files.mkdir()
        for i in range(PREVIEW_FILES):
            (files / f"f{i}.txt").write_text(f"file {i}\n")
        layout = cls(ws, settings).layout
        pool = WarmPool(Layout(ws, "rw", layout.network), settings, size=1, spawner=spawner)
        try:
            for _ in range(n):
                t = time.perf_counter()
                subprocess.run(["/bin/true"], check=True)
                timed("baseline_subprocess", t)
                t = time.perf_counter()
                result, _ = await launch(
                    layout, settings, ["/bin/true"], stdin=None, timeout_s=30, spawner=spawner
                )
                timed("cold", t)
                assert result.exit_code == 0, result.stderr
                await asyncio.sleep(GAP_S)
                t = time.perf_counter()
                result, _ = await launch(
                    layout, settings, ["/bin/true"], stdin=None, timeout_s=30, spawner=spawner
                )
                timed("cold_spaced", t)
                t = time.perf_counter()
                preview = await run_preview(files, settings, ["/bin/true"], spawner=spawner)
                timed("preview", t)
                assert preview.result.exit_code == 0, preview.result.stderr
                discard(preview.handle)
            pool.fill()
            for _ in range(n):
                await _until_idle(pool)
                t = time.perf_counter()
                result = await pool.run(["/bin/true"])
                timed("warm", t)
                assert result.exit_code == 0, result.stderr
        finally:
            stats = pool.stats_dict()
            pool.close()
    out: dict[str, Any] = {name: percentiles(samples) for name, samples in series.items()}
    out["pool"] = stats
    out["ratios_p50"] = ratios_p50(out, ("cold", "cold_spaced", "preview", "warm"))
    out["preview_overhead_p50_ms"] = round(out["preview"]["p50_ms"] - out["cold"]["p50_ms"], 2)
    return out


async def _until_idle(pool: Any, limit_s: float = 10.0) -> None:
    if not await asyncio.to_thread(pool.wait_idle, 1, limit_s):
        raise TimeoutError(f"the warm pool did not refill within {limit_s} s")
