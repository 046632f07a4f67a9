"""CLI start-up and demo wall time, each beside a baseline measured in the same run.

    python bench/cli_startup.py [--n 30] [--json]

- `luminaguard --help` vs a bare `python -c pass` (median, p95, ratio);
- `luminaguard demo` wall time (median of a few runs) — it includes the
  scripted model's simulated latency (0.85 s in the bundled playbook).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

from luminaguard.stats import percentile


def timed(argv: list[str], n: int, env: dict[str, str]) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        subprocess.run(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True
        )
        out.append((time.perf_counter() - started) * 1000)
    return out


def summary(samples: list[float]) -> dict[str, float]:
    p95 = percentile(samples, 0.95)
    return {
        "median_ms": round(statistics.median(samples), 2),
        "p95_ms": round(p95, 2),
        "n": len(samples),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--demo-runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    # Byte-compile the package first: an installed package has its .pyc files,
    # and PYTHONDONTWRITEBYTECODE (set on some machines) would otherwise make
    # every run compile from source.
    import compileall

    import luminaguard

    compileall.compile_dir(
        os.path.dirname(luminaguard.__file__), quiet=1, rx=re.compile("demo/project")
    )
    with tempfile.TemporaryDirectory() as state:
        env = {**os.environ, "XDG_STATE_HOME": state}
        # Interleave warm-up so both commands see the same cache state.
        timed([sys.executable, "-c", "pass"], 3, env)
        timed([sys.executable, "-m", "luminaguard", "--help"], 3, env)
        baseline = summary(timed([sys.executable, "-c", "pass"], args.n, env))
        helps = summary(timed([sys.executable, "-m", "luminaguard", "--help"], args.n, env))
        demo = summary(timed([sys.executable, "-m", "luminaguard", "demo"], args.demo_runs, env))
    result = {
        "baseline_python_pass": baseline,
        "luminaguard_help": helps,
        "help_over_baseline_median": round(helps["median_ms"] / baseline["median_ms"], 2),
        "demo_wall": demo,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"python -c pass      median {baseline['median_ms']:8.1f} ms   p95 {baseline['p95_ms']:8.1f} ms"
    )
    print(
        f"luminaguard --help  median {helps['median_ms']:8.1f} ms   p95 {helps['p95_ms']:8.1f} ms   ({result['help_over_baseline_median']}x)"
    )
    print(
        f"luminaguard demo    median {demo['median_ms']:8.1f} ms   p95 {demo['p95_ms']:8.1f} ms   (n={demo['n']})"
    )


if __name__ == "__main__":
    main()
