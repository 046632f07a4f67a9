"""The micro-VM's numbers beside a plain subprocess, all in the same run.

- ``baseline_subprocess``: ``subprocess.run(["/bin/true"])``;
- ``cold_boot``: QEMU started to the guest agent's first word (a few samples:
  seconds each under TCG);
- ``restore``: a clone restored from the template, paused and ready;
- ``acquire_exec``: a clone taken from the pool (``cont``) and ``true`` run
  in it, each sample after the pool has a ready clone again (untimed);
- ``exec_round_trip``: one more command in a running clone.

Baseline, restore and round-trip samples take turns, so drift in the
machine's speed lands on all alike.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from luminaguard.stats import percentiles, ratios_p50
from luminaguard.vm.image import Image
from luminaguard.vm.pool import WARM_UP, ClonePool
from luminaguard.vm.qemu import Vm, clone, make_template

BOOT_SERIES = ("baseline_subprocess", "cold_boot", "restore", "acquire_exec", "exec_round_trip")
"""What ``vm bench`` measures."""


def vm_bench(image: Image, accel: str, n: int, boots: int = 3) -> dict[str, Any]:
    series: dict[str, list[float]] = {k: [] for k in BOOT_SERIES}

    def timed(name: str, started: float) -> None:
        series[name].append((time.perf_counter() - started) * 1000)

    for _ in range(boots):
        t = time.perf_counter()
        with Vm(image, accel=accel):
            timed("cold_boot", t)
    with tempfile.TemporaryDirectory(prefix="lg-vm-bench-") as tmp:
        template = make_template(image, accel, Path(tmp))
        for _ in range(n):
            t = time.perf_counter()
            subprocess.run(["/bin/true"], check=True)
            timed("baseline_subprocess", t)
            t = time.perf_counter()
            vm = clone(image, template, accel)
            timed("restore", t)
            try:
                vm.resume()
                assert vm.agent is not None
                vm.agent.run(WARM_UP)
                t = time.perf_counter()
                vm.agent.run(WARM_UP)
                timed("exec_round_trip", t)
            finally:
                vm.close()
        pool = ClonePool(image, template, accel, size=1)
        try:
            pool.fill()
            for _ in range(n):
                if not pool.wait_idle(1, 60):
                    raise TimeoutError("the clone pool did not refill within 60 s")
                t = time.perf_counter()
                vm = pool.acquire()
                try:
                    assert vm.agent is not None
                    result = vm.agent.run(["/bin/busybox", "true"])
                    timed("acquire_exec", t)
                    assert result.exit_code == 0, result.stderr
                finally:
                    vm.close()
            stats = pool.stats_dict()
        finally:
            pool.close()
    out: dict[str, Any] = {name: percentiles(samples) for name, samples in series.items()}
    out["accelerator"] = accel
    out["pool"] = stats
    out["ratios_p50"] = ratios_p50(out, ("restore", "acquire_exec", "exec_round_trip"))
    return out


async def microvm_pool_bench(settings: Any, n: int) -> dict[str, Any]:
    """``pool bench --backend microvm``: the keys of the other backends' bench.
    ``cold`` is a clone restored for the command (no pool), ``warm`` one taken
    from the pool; ``preview`` the backend's preview of ``true`` on 100 files."""
    import asyncio

    from luminaguard.sandbox.bench import GAP_S, PREVIEW_FILES, SERIES
    from luminaguard.sandbox.preview import discard
    from luminaguard.vm.backend import MicrovmSandbox, Runtime

    series: dict[str, list[float]] = {k: [] for k in SERIES}

    def timed(name: str, started: float) -> None:
        series[name].append((time.perf_counter() - started) * 1000)

    runtime = await asyncio.to_thread(Runtime.get, 1)

    def cold() -> None:
        vm = clone(runtime.image, runtime.template, runtime.accel)
        try:
            vm.resume()
            assert vm.agent is not None
            assert vm.agent.run(["/bin/busybox", "true"]).exit_code == 0
        finally:
            vm.close()

    with tempfile.TemporaryDirectory(prefix="lg-bench-") as tmp:
        files = Path(tmp) / "files"
        files.mkdir()
        for i in range(PREVIEW_FILES):
            (files / f"f{i}.txt").write_text(f"file {i}\n")
        sandbox = MicrovmSandbox(files, settings)
        for _ in range(n):
            t = time.perf_counter()
            subprocess.run(["/bin/true"], check=True)
            timed("baseline_subprocess", t)
            t = time.perf_counter()
            await asyncio.to_thread(cold)
            timed("cold", t)
            await asyncio.sleep(GAP_S)
            t = time.perf_counter()
            await asyncio.to_thread(cold)
            timed("cold_spaced", t)
            await asyncio.to_thread(runtime.pool.wait_idle, 1, 60)
            t = time.perf_counter()
            preview = await sandbox.preview(["/bin/true"])
            timed("preview", t)
            assert preview.result.exit_code == 0, preview.result.stderr
            discard(preview.handle)
        for _ in range(n):
            if not await asyncio.to_thread(runtime.pool.wait_idle, 1, 60):
                raise TimeoutError("the clone pool did not refill within 60 s")
            t = time.perf_counter()
            vm = await asyncio.to_thread(runtime.pool.acquire)
            try:
                assert vm.agent is not None
                result = await asyncio.to_thread(vm.agent.run, ["/bin/busybox", "true"])
                timed("warm", t)
                assert result.exit_code == 0
            finally:
                vm.close()
    out: dict[str, Any] = {name: percentiles(samples) for name, samples in series.items()}
    out["pool"] = runtime.pool.stats_dict()
    out["accelerator"] = runtime.accel
    out["ratios_p50"] = ratios_p50(out, ("cold", "cold_spaced", "preview", "warm"))
    out["preview_overhead_p50_ms"] = round(out["preview"]["p50_ms"] - out["cold"]["p50_ms"], 2)
    return out
