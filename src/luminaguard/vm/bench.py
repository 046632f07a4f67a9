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

from luminaguard.stats import percentiles
from luminaguard.vm.image import Image
from luminaguard.vm.pool import WARM_UP, ClonePool
from luminaguard.vm.qemu import Vm, clone, make_template


def vm_bench(image: Image, accel: str, n: int, boots: int = 3) -> dict[str, Any]:
    series: dict[str, list[float]] = {
        k: []
        for k in ("baseline_subprocess", "cold_boot", "restore", "acquire_exec", "exec_round_trip")
    }

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
    base = out["baseline_subprocess"]["p50_ms"]
    out["ratios_p50"] = {
        name: round(out[name]["p50_ms"] / base, 2)
        for name in ("restore", "acquire_exec", "exec_round_trip")
    }
    return out
