"""Small charts for the service's metrics page: inline SVG drawn here (no
script, nothing fetched), every label escaped.

- Providers: per provider and model, requests bucketed over a time window:
  latency p50 and p95, the share that succeeded, and what they cost.
- Pools: the service samples its pools every ``PoolHistory.EVERY_S`` and
  keeps an hour; per pool, acquire p50 and p95 and how many were idle.
"""

from __future__ import annotations

import contextlib
import html
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from luminaguard.stats import percentile

BUCKETS = 24
WIDTH, HEIGHT, PAD = 300, 70, 4
BLUE, ORANGE, GREEN, GREY = "#0969da", "#bc4c00", "#1a7f37", "#6e7781"

Series = tuple[str, str, Sequence[float | None]]
"""A line: its name, its colour, and one value per bucket (None: no data)."""


def chart(
    title: str, unit: str, series: Sequence[Series], *, fixed_top: float | None = None
) -> str:
    """One small line chart: ``series`` over the same buckets, the axis from 0
    to the largest value (or ``fixed_top``), the newest value of each named."""
    values = [v for _, _, vs in series for v in vs if v is not None]
    top = fixed_top if fixed_top is not None else max(values, default=0.0)
    top = top or 1.0
    lines = []
    legend = []
    for name, colour, vs in series:
        n = max(1, len(vs) - 1)
        points = [
            f"{PAD + i * (WIDTH - 2 * PAD) / n:.1f},"
            f"{HEIGHT - PAD - (v / top) * (HEIGHT - 2 * PAD):.1f}"
            for i, v in enumerate(vs)
            if v is not None
        ]
        if len(points) == 1:  # one bucket: a dot, not an invisible line
            x, y = points[0].split(",")
            lines.append(f"<circle cx='{x}' cy='{y}' r='2' fill='{colour}'/>")
        elif points:
            lines.append(
                f"<polyline fill='none' stroke='{colour}' stroke-width='1.5' points='{' '.join(points)}'/>"
            )
        last = next((v for v in reversed(vs) if v is not None), None)
        shown = "–" if last is None else _number(last, unit)
        legend.append(f"<span style='color:{colour}'>■</span> {html.escape(name)} {shown}")
    return (
        "<figure class='chart'>"
        f"<figcaption>{html.escape(title)} <small>(top {_number(top, unit)})</small></figcaption>"
        f"<svg viewBox='0 0 {WIDTH} {HEIGHT}' width='100%' height='{HEIGHT}' role='img' "
        f"aria-label='{html.escape(title)}' preserveAspectRatio='none'>"
        f"<rect x='0' y='0' width='{WIDTH}' height='{HEIGHT}' fill='#f6f8fa'/>"
        + "".join(lines)
        + "</svg><div class='legend'>"
        + " · ".join(legend)
        + "</div></figure>"
    )


def _number(v: float, unit: str) -> str:
    if unit == "$":
        return f"${v:.4f}"
    if unit == "%":
        return f"{v:.0f}%"
    if not unit:
        return f"{v:g}"
    return f"{v:.1f} {unit}" if v < 100 else f"{v:.0f} {unit}"


def provider_charts(rows: Sequence[Any], since: float, until: float) -> list[str]:
    """Charts per provider and model for the requests in ``since``..``until``
    (``llm.metrics.Row``s), in ``BUCKETS`` buckets."""
    groups: dict[str, list[Any]] = {}
    for r in rows:
        if since <= r.ts <= until:
            groups.setdefault(f"{r.provider}/{r.model}", []).append(r)
    width = (until - since) / BUCKETS or 1.0
    out = []
    for name, group in sorted(groups.items()):
        buckets: list[list[Any]] = [[] for _ in range(BUCKETS)]
        for r in group:
            buckets[min(BUCKETS - 1, int((r.ts - since) / width))].append(r)
        p50: list[float | None] = []
        p95: list[float | None] = []
        ok: list[float | None] = []
        cost: list[float | None] = []
        for b in buckets:
            durations = [r.duration_s * 1000 for r in b]
            p50.append(percentile(durations, 0.5) if b else None)
            p95.append(percentile(durations, 0.95) if b else None)
            ok.append(100.0 * sum(r.ok for r in b) / len(b) if b else None)
            cost.append(sum(r.cost_usd for r in b) if b else None)
        out.append(
            f"<h3>{html.escape(name)} <small>{len(group):,} requests · a point per "
            f"{_span(width)}</small></h3><div class='charts'>"
            + chart("latency", "ms", [("p50", BLUE, p50), ("p95", ORANGE, p95)])
            + chart("succeeded", "%", [("ok", GREEN, ok)], fixed_top=100.0)
            + chart("cost per bucket", "$", [("cost", GREY, cost)])
            + "</div>"
        )
    return out


def _span(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"


class PoolHistory:
    """The service's pools, sampled every ``EVERY_S`` for the last ``KEEP`` samples."""

    EVERY_S = 10.0
    KEEP = 360

    def __init__(self, pools: Callable[[], list[dict[str, Any]]]) -> None:
        self.pools = pools
        self.samples: deque[tuple[float, list[dict[str, Any]]]] = deque(maxlen=self.KEEP)
        self._lock = threading.Lock()

    def sample(self) -> None:
        rows = self.pools()
        with self._lock:
            self.samples.append((time.time(), rows))

    def run(self, stopping: threading.Event) -> None:
        """Sample until ``stopping`` is set (a thread's body); a failed look
        is a gap in the charts."""
        while True:
            with contextlib.suppress(Exception):
                self.sample()
            if stopping.wait(self.EVERY_S):
                return

    def charts(self) -> list[str]:
        """A chart pair per pool: its samples, and a look at it now last."""
        with self._lock:
            samples = list(self.samples)
        with contextlib.suppress(Exception):
            samples.append((time.time(), self.pools()))
        # Per pool, its row in each sample (None where it was not there).
        pools: dict[tuple[str, str], list[dict[str, Any] | None]] = {}
        for i, (_, rows) in enumerate(samples):
            for row in rows:
                key = (str(row["backend"]), str(row["workspace"]))
                pools.setdefault(key, [None] * len(samples))[i] = row
        out = []
        for (backend, workspace), seen in pools.items():
            out.append(
                f"<h3>{html.escape(backend)} · {html.escape(workspace)}</h3><div class='charts'>"
                + chart(
                    "acquire",
                    "ms",
                    [
                        ("p50", BLUE, _series(seen, lambda r: r["acquire_ms"]["p50"])),
                        ("p95", ORANGE, _series(seen, lambda r: r["acquire_ms"]["p95"])),
                    ],
                )
                + chart(
                    "sandboxes",
                    "",
                    [
                        ("idle", GREEN, _series(seen, lambda r: r["idle"])),
                        ("in use", BLUE, _series(seen, lambda r: r["in_use"])),
                    ],
                )
                + "</div>"
            )
        return out


def _series(
    seen: Sequence[dict[str, Any] | None], pick: Callable[[dict[str, Any]], float]
) -> list[float | None]:
    return [None if row is None else float(pick(row)) for row in seen]
