"""`sandbox exec --read-only` through the running local service (its warm
pool) against the same command run standalone (a cold sandbox), the whole CLI
included, beside a plain subprocess and `python -c pass`; the series take turns.

    python bench/service_bench.py [--n 15] [--backend bwrap|gvisor|microvm] [--json]

The service is started for the run, on a temporary data directory. Where
Codex is installed (`codex` on PATH, or `make bench` puts it in
.cache/codex), `codex sandbox -- /bin/true` (its default read-only sandbox)
takes turns too, through its npm launcher and as its native binary: the
speed issue's goal is the whole CLI through the service at most half of it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from luminaguard.stats import percentiles, series_line

CLI = [sys.executable, "-m", "luminaguard"]
ROOT = Path(__file__).resolve().parents[1]
CODEX_CACHE = ROOT / ".cache" / "codex" / "node_modules"
VM_CACHE = ROOT / ".cache" / "vm"
"""The micro-VM's image and templates as the tests build them (used when there)."""


def codex_commands() -> dict[str, list[str]]:
    """`codex sandbox -- /bin/true` by its npm launcher and by its native binary, where found."""
    launcher = shutil.which("codex") or str(CODEX_CACHE / ".bin" / "codex")
    if not os.access(launcher, os.X_OK):
        return {}
    found = {"codex_npm": [launcher, "sandbox", "--", "/bin/true"]}
    root = Path(os.path.realpath(launcher)).parent.parent / "node_modules"
    for base in (root, CODEX_CACHE):
        for native in base.glob("@openai/codex-linux-*/vendor/*/bin/codex"):
            found["codex_native"] = [str(native), "sandbox", "--", "/bin/true"]
            return found
    return found


def main(n: int, backend: str = "bwrap") -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "XDG_STATE_HOME": tmp, "XDG_CONFIG_HOME": tmp}
        if backend == "microvm" and "LUMINAGUARD_VM_DATA" not in env and VM_CACHE.is_dir():
            env["LUMINAGUARD_VM_DATA"] = str(VM_CACHE)
        on = ["--backend", backend]
        ws = Path(tmp) / "ws"
        ws.mkdir()
        service = subprocess.Popen(
            [*CLI, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        try:
            assert service.stdout is not None
            assert re.search(r"http://127\.0\.0\.1:\d+/", service.stdout.readline())
            series: dict[str, list[float]] = {
                "baseline_subprocess": [],
                "baseline_python": [],
                "cli_exec_standalone": [],
                "cli_exec_via_service": [],
            }
            commands = {
                "baseline_subprocess": ["/bin/true"],
                "baseline_python": [sys.executable, "-c", "pass"],
                "cli_exec_standalone": [*CLI, "sandbox", "exec", "--workspace", str(ws), *on, "--", "/bin/true"],
                "cli_exec_via_service": [
                    *CLI, "sandbox", "exec", "--workspace", str(ws), *on, "--read-only", "--", "/bin/true",
                ],
            }  # fmt: skip
            codex = codex_commands()
            commands.update(codex)
            series.update({name: [] for name in codex})
            for first in ("cli_exec_standalone", "cli_exec_via_service"):  # the pool is made
                tried = subprocess.run(commands[first], env=env, capture_output=True, text=True)
                if tried.returncode != 0:
                    return {"backend": backend, "unavailable": tried.stderr.strip()}
            for _ in range(n):
                for name, argv in commands.items():
                    t = time.perf_counter()
                    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
                    series[name].append((time.perf_counter() - t) * 1000)
        finally:
            service.terminate()
            service.wait(30)
    out: dict[str, Any] = {
        "backend": backend,
        **{name: percentiles(s) for name, s in series.items()},
    }
    out["ratio_p50_via_service_over_standalone"] = round(
        out["cli_exec_via_service"]["p50_ms"] / out["cli_exec_standalone"]["p50_ms"], 2
    )
    if "codex_npm" in out:
        out["ratio_p50_via_service_over_codex_npm"] = round(
            out["cli_exec_via_service"]["p50_ms"] / out["codex_npm"]["p50_ms"], 2
        )
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=15)
    parser.add_argument("--backend", default="bwrap", choices=["bwrap", "gvisor", "microvm"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = main(args.n, args.backend)
    if args.json:
        print(json.dumps(result, indent=2))
    elif "unavailable" in result:
        print(f"backend {args.backend}: not measured: {result['unavailable']}")
    else:
        print(f"backend {args.backend}")
        for name in (
            "baseline_subprocess",
            "baseline_python",
            "cli_exec_standalone",
            "cli_exec_via_service",
            "codex_npm",
            "codex_native",
        ):
            if name in result:
                print(series_line(name, result[name]))
        print(
            f"via the service / standalone (p50): {result['ratio_p50_via_service_over_standalone']}x"
        )
        if "codex_npm" in result:
            print(
                f"via the service / codex (npm) (p50): {result['ratio_p50_via_service_over_codex_npm']}x"
            )
        else:
            print("codex: not installed (`npm install --prefix .cache/codex @openai/codex`)")
