"""The isolation tiers side by side: bwrap, gVisor and the micro-VM, each
beside a plain subprocess measured in the same run.

    python bench/tiers_bench.py [--n 20] [--boots 3] [--json]

For every backend with a pool: cold (a fresh sandbox per command), cold with
idle gaps, a preview of `true` on 100 files, and warm (pool acquire + exec);
for the micro-VM also a cold boot, a clone restore, and one more command in a
running clone. A tier that cannot run here is reported with the reason.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from luminaguard.config import SandboxSettings
from luminaguard.errors import LuminaGuardError
from luminaguard.sandbox import backend_class
from luminaguard.sandbox.bench import SERIES, pool_bench
from luminaguard.stats import report
from luminaguard.vm.bench import BOOT_SERIES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--boots", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    settings = SandboxSettings(timeout_s=60)
    out: dict[str, Any] = {}
    for backend in ("bwrap", "gvisor", "microvm"):
        try:
            backend_class(backend).check_available()
            if backend == "microvm":
                from luminaguard.vm.bench import microvm_pool_bench

                out[backend] = asyncio.run(microvm_pool_bench(settings, args.n))
            else:
                out[backend] = asyncio.run(pool_bench(settings, args.n, backend))
        except LuminaGuardError as exc:
            out[backend] = {"unavailable": str(exc)}
    try:
        from luminaguard.vm.backend import vm_data_dir
        from luminaguard.vm.bench import vm_bench
        from luminaguard.vm.image import find_image
        from luminaguard.vm.qemu import accelerator

        image = find_image(vm_data_dir())
        if image is None:
            raise LuminaGuardError("no guest image: run `luminaguard vm build-image`")
        accel = accelerator(image, vm_data_dir())
        out["microvm_boot"] = {**vm_bench(image, accel.name, args.n, args.boots), "why": accel.why}
    except LuminaGuardError as exc:
        out["microvm_boot"] = {"unavailable": str(exc)}
    if args.json:
        print(json.dumps(out, indent=2))
        return
    for backend in ("bwrap", "gvisor", "microvm"):
        result = out[backend]
        print(f"== {backend}")
        if "unavailable" in result:
            print(f"   unavailable: {result['unavailable']}")
            continue
        print(report(result, SERIES, indent="   "))
    boot = out["microvm_boot"]
    print(f"== microvm boot ({boot.get('accelerator', '?')}: {boot.get('why', '')})")
    if "unavailable" in boot:
        print(f"   unavailable: {boot['unavailable']}")
    else:
        print(report(boot, BOOT_SERIES, indent="   "))


if __name__ == "__main__":
    if os.geteuid() != 0:
        print(
            "note: gvisor and microvm previews need root; their tiers may be unavailable",
            file=sys.stderr,
        )
    main()
