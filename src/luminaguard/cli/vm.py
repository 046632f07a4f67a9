"""`luminaguard vm build-image|bench`: the micro-VM's image and its numbers."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from luminaguard.cli.common import EXIT_OK, Parser
from luminaguard.errors import UsageError


def add_vm(sub: Any) -> None:
    """vm: the micro-VM's guest image and benchmark."""
    vm = sub.add_parser("vm", help="the micro-VM: its guest image and benchmark")
    vsub = vm.add_subparsers(
        dest="vm_command", metavar="ACTION", required=True, parser_class=Parser
    )
    build = vsub.add_parser(
        "build-image", help="build (or find, cached) the guest kernel, initramfs and agent"
    )
    build.add_argument("--json", action="store_true", help="print JSON")
    bench = vsub.add_parser(
        "bench", help="cold boot, clone restore, pool acquire+exec beside a plain subprocess"
    )
    bench.add_argument("--n", type=int, default=20, help="samples per measurement")
    bench.add_argument("--boots", type=int, default=3, help="cold boots to time")
    bench.add_argument("--json", action="store_true", help="print JSON")
    vm.set_defaults(handler=cmd_vm)


def cmd_vm(args: argparse.Namespace) -> int:
    from luminaguard.vm.backend import vm_data_dir
    from luminaguard.vm.image import build_image, describe

    data_dir = vm_data_dir()
    say = (lambda line: print(line, file=sys.stderr)) if args.json else print
    image, built = build_image(data_dir, say=say)
    if args.vm_command == "build-image":
        info = {**describe(image), "built": built}
        if args.json:
            print(json.dumps(info, indent=2))
        else:
            print(f"{'built' if built else 'already built'}: {image.directory}")
            print(f"  kernel {info['kernel']}, vmlinux {info['vmlinux_bytes']:,} bytes")
            print(f"  initramfs {info['initrd_bytes']:,} bytes, sha256 {info['initrd_sha256']}")
        return EXIT_OK
    if args.n < 1 or args.boots < 1:
        raise UsageError("--n and --boots must be at least 1")
    from luminaguard.stats import report
    from luminaguard.vm.bench import BOOT_SERIES, vm_bench
    from luminaguard.vm.qemu import accelerator

    accel = accelerator(image, data_dir)
    say(f"luminaguard: accelerator {accel.name}: {accel.why}")
    result = vm_bench(image, accel.name, args.n, args.boots)
    result["accelerator_why"] = accel.why
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(report(result, BOOT_SERIES))
    return EXIT_OK
