"""Micro-VM clone churn: many clones, each made ready as the pool makes its
spares (``vm.pool.ready_clone``: resumed, pinged, warmed up, paused), then
closed; how many got stuck and what a clone's life cost.

    python bench/microvm_churn.py [--n 60] [--load]

`--load` keeps the host busy meanwhile (three looping bwrap sandboxes and a
CPU spinner), the condition under which version 2's guest agent lost a
command's exit now and then (1-3 clones in 60). A stuck clone is one whose
warm-up does not end within the pool's ``READY_S``.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import time

from luminaguard.errors import LuminaGuardError
from luminaguard.sandbox.profile import find_bwrap
from luminaguard.stats import percentiles, series_line
from luminaguard.vm.backend import _template, vm_data_dir
from luminaguard.vm.image import find_image
from luminaguard.vm.pool import ready_clone
from luminaguard.vm.qemu import accelerator


def _load() -> list[subprocess.Popen[bytes]]:
    bwrap = find_bwrap()
    loop = f"while :; do {bwrap} --ro-bind / / --unshare-all true; done"
    return [subprocess.Popen(["sh", "-c", loop]) for _ in range(3)] + [
        subprocess.Popen(["sh", "-c", "while :; do :; done"])
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--load", action="store_true")
    args = parser.parse_args()
    data = vm_data_dir()
    image = find_image(data)
    if image is None:
        sys.exit("no micro-VM image: run `luminaguard vm build-image` first")
    accel = accelerator(image, data).name
    template = _template(image, accel, data)
    load = _load() if args.load else []
    stuck, lives = 0, []
    try:
        for i in range(args.n):
            started = time.monotonic()
            try:
                ready_clone(image, template, accel).close()
                lives.append((time.monotonic() - started) * 1000)
            except LuminaGuardError as exc:
                stuck += 1
                print(f"clone {i}: stuck ({exc})", flush=True)
    finally:
        for proc in load:
            proc.kill()
        for proc in load:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
    print(f"{args.n} clones ({accel}{', host loaded' if args.load else ''}): {stuck} stuck")
    if lives:
        print(
            series_line("clone life", percentiles(lives)),
            "(clone, resume, ping, warm-up, pause, close)",
        )


if __name__ == "__main__":
    main()
