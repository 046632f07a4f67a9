"""Percentiles, the one way the project computes them (metrics, pool stats, benchmarks)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank ``p`` quantile (0 ≤ p ≤ 1) of a non-empty sequence."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99 of millisecond samples, as benchmarks report them."""

    def pct(p: float) -> float:
        return round(percentile(samples, p), 3)

    return {"p50_ms": pct(0.5), "p95_ms": pct(0.95), "p99_ms": pct(0.99), "n": len(samples)}


def series_line(name: str, r: Mapping[str, float], width: int = 22) -> str:
    """One benchmark series as a line: ``name  p50 … ms  p95 … ms  p99 … ms``."""
    return f"{name:<{width}} p50 {r['p50_ms']:7.2f} ms  p95 {r['p95_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms"


def ratios_p50(
    out: Mapping[str, Mapping[str, float]], names: Sequence[str], base: str = "baseline_subprocess"
) -> dict[str, float]:
    """Each series' p50 over the baseline's, measured in the same run."""
    return {name: round(out[name]["p50_ms"] / out[base]["p50_ms"], 2) for name in names}


def report(result: Mapping[str, Any], names: Sequence[str], indent: str = "") -> str:
    """A benchmark's series, one line each, and its ratios over the baseline."""
    lines = [indent + series_line(name, result[name]) for name in names]
    if "ratios_p50" in result:
        ratios = ", ".join(f"{k} {v}x" for k, v in result["ratios_p50"].items())
        lines.append(f"{indent}ratios over the baseline (p50): {ratios}")
    return "\n".join(lines)


def bench_cli(
    measure: Callable[[int], Mapping[str, Any]], n: int, show: Callable[[Any], None]
) -> None:
    """A benchmark's command line: ``--n`` samples a series (default ``n``);
    the result as JSON with ``--json``, else as ``show`` prints it."""
    import argparse
    import json

    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=n)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args.n)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        show(result)
