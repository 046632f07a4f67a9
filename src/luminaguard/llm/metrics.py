"""Per-provider metrics: one row per model request, kept in SQLite so that
`luminaguard metrics` reports across runs and time ranges.

Win rate (per provider, model and task type): the share of successful
responses that *won*: every tool call they asked for was valid and carried
out (not rejected for bad arguments or an unknown tool, not denied, not a
tool error), or, for an answer without tool calls, it ended the run as
`finished`. Responses whose outcome the loop never reported count as not won.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any, NamedTuple

from luminaguard.messages import AssistantTurn
from luminaguard.stats import percentile
from luminaguard.store import connect


class Row(NamedTuple):
    """One model request. A tuple, not a dataclass, made straight from
    SQLite's row: a scrape reads every row (10,000 frozen dataclasses cost
    ~80 ms to build, converting each row's values ~8 ms)."""

    ts: float
    provider: str
    model: str
    task_type: str
    duration_s: float
    ttft_s: float | None
    tokens_in: int
    tokens_out: int
    cost_usd: float
    ok: int
    """1 when the provider answered, else 0 (SQLite's own value: no conversion per row)."""
    error_type: str | None
    won: int
    """1 when the answer won (see above), else 0."""


COLUMNS = "ts, provider, model, task_type, duration_s, ttft_s, tokens_in, tokens_out, cost_usd, ok, error_type, won"


METRICS_SCHEMA = """CREATE TABLE IF NOT EXISTS requests (
                    id TEXT PRIMARY KEY, ts REAL NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL,
                    task_type TEXT NOT NULL, duration_s REAL NOT NULL, ttft_s REAL, tokens_in INTEGER NOT NULL,
                    tokens_out INTEGER NOT NULL, cost_usd REAL NOT NULL, ok INTEGER NOT NULL, error_type TEXT,
                    won INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS requests_ts ON requests(ts);"""


class ProviderMetrics:
    def __init__(self, path: Path) -> None:
        self.db = connect(path, "metrics store", METRICS_SCHEMA)

    def record(
        self,
        *,
        request_id: str,
        spec: str,
        task_type: str,
        duration_s: float,
        turn: AssistantTurn | None,
        error_type: str | None,
    ) -> None:
        provider, _, model = spec.partition("/")
        self.db.execute(
            f"INSERT OR REPLACE INTO requests (id, {COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
            (
                request_id,
                time.time(),
                provider,
                model,
                task_type,
                duration_s,
                turn.ttft_s if turn else None,
                turn.usage.input_tokens if turn else 0,
                turn.usage.output_tokens if turn else 0,
                turn.cost_usd if turn else 0.0,
                1 if turn is not None else 0,
                error_type,
            ),
        )

    def mark(self, request_id: str, won: bool) -> None:
        if request_id:
            self.db.execute(
                "UPDATE requests SET won = ? WHERE id = ?", (1 if won else 0, request_id)
            )

    def rows(self, since: float | None = None, until: float | None = None) -> list[Row]:
        sql = f"SELECT {COLUMNS} FROM requests WHERE ts >= ? AND ts <= ? ORDER BY ts"
        out = self.db.execute(
            sql, (0.0 if since is None else since, 1e18 if until is None else until)
        ).fetchall()
        return list(map(Row._make, out))

    def close(self) -> None:
        self.db.close()


def summarise(rows: list[Row]) -> list[dict[str, Any]]:
    """JSON per provider, model and task type."""
    groups: dict[tuple[str, str, str], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.provider, r.model, r.task_type), []).append(r)
    out = []
    for (provider, model, task), rs in sorted(groups.items()):
        ok = [r for r in rs if r.ok]
        lat = [r.duration_s for r in ok]
        ttft = [r.ttft_s for r in ok if r.ttft_s is not None]
        out.append(
            {
                "provider": provider,
                "model": model,
                "task_type": task,
                "requests": len(rs),
                "successes": len(ok),
                "success_rate": round(len(ok) / len(rs), 4),
                "errors": {
                    e: sum(1 for r in rs if r.error_type == e)
                    for e in sorted({r.error_type for r in rs if r.error_type})
                },
                "latency_s": _stats(lat),
                "ttft_s": _stats(ttft),
                "tokens_in": sum(r.tokens_in for r in rs),
                "tokens_out": sum(r.tokens_out for r in rs),
                "cost_usd": round(sum(r.cost_usd for r in rs), 6),
                "win_rate": round(sum(1 for r in ok if r.won) / len(ok), 4) if ok else 0.0,
            }
        )
    return out


def _stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "median": None, "p50": None, "p95": None, "p99": None}
    return {
        "mean": round(statistics.fmean(values), 6),
        # One middle value under both names (the median of an even count is
        # the mean of the two middle values; p50 is the same number).
        "median": round(statistics.median(values), 6),
        "p50": round(statistics.median(values), 6),
        "p95": round(percentile(values, 0.95), 6),
        "p99": round(percentile(values, 0.99), 6),
    }
