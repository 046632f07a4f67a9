"""The one metrics registry: Prometheus exposition and a JSON snapshot.

Model metrics follow the OpenTelemetry GenAI semantic conventions, with
attribute dots turned into underscores as Prometheus requires:
`gen_ai_client_operation_duration_seconds` and `gen_ai_client_token_usage`
(histograms with the OTel bucket boundaries), labelled `gen_ai_provider_name`,
`gen_ai_request_model`, `gen_ai_operation_name` and `error_type`. Ours carry
the `luminaguard_` prefix.
"""

from __future__ import annotations

import bisect
import json
import operator
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from luminaguard.llm.metrics import Row, summarise

DURATION_BUCKETS = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
TOKEN_BUCKETS = (
    1,
    4,
    16,
    64,
    256,
    1024,
    4096,
    16384,
    65536,
    262144,
    1048576,
    4194304,
    16777216,
    67108864,
)
TTFT_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)


def _histogram(
    name: str,
    doc: str,
    labels: list[str],
    series: dict[tuple[str, ...], list[float]],
    bounds: tuple[float, ...],
) -> HistogramMetricFamily:
    h = HistogramMetricFamily(name, doc, labels=labels)
    for key, values in sorted(series.items()):
        ordered = sorted(values)
        # Cumulative counts: how many values are <= each bound.
        buckets = [(str(b), float(bisect.bisect_right(ordered, b))) for b in bounds]
        buckets.append(("+Inf", float(len(ordered))))
        h.add_metric(list(key), buckets, sum_value=float(sum(ordered)))
    return h


class ProviderCollector(Collector):
    def __init__(self, rows: list[Row]) -> None:
        self.rows = rows

    def collect(self) -> Iterator[Metric]:
        labels = [
            "gen_ai_provider_name",
            "gen_ai_request_model",
            "gen_ai_operation_name",
            "error_type",
        ]
        durations: dict[tuple[str, ...], list[float]] = {}
        tokens: dict[tuple[str, ...], list[float]] = {}
        ttft: dict[tuple[str, ...], list[float]] = {}
        # Rows grouped in one pass (a key per row, made in C), then each
        # group's columns at once; summarise would also work out percentiles
        # that no scrape shows.
        groups: dict[tuple[str, str, str, str | None, int], list[Row]] = {}
        group_of = operator.itemgetter(1, 2, 3, 10, 9)  # provider, model, task, error, ok
        for r in self.rows:
            groups.setdefault(group_of(r), []).append(r)
        counts: dict[tuple[str, str, str], list[int]] = {}
        spend: dict[tuple[str, str], float] = {}
        for (provider, model, task, error, ok), rs in groups.items():
            durations.setdefault((provider, model, "chat", error or ""), []).extend(
                r.duration_s for r in rs
            )
            c = counts.setdefault((provider, model, task), [0, 0, 0])
            c[0] += len(rs)
            spend[(provider, model)] = spend.get((provider, model), 0.0) + sum(
                r.cost_usd for r in rs
            )
            if ok:
                c[1] += len(rs)
                c[2] += sum(r.won for r in rs)
                base = (provider, model, "chat")
                tokens.setdefault((*base, "input"), []).extend(r.tokens_in for r in rs)
                tokens.setdefault((*base, "output"), []).extend(r.tokens_out for r in rs)
                firsts = [r.ttft_s for r in rs if r.ttft_s is not None]
                if firsts:
                    ttft.setdefault(base, []).extend(firsts)
        yield _histogram(
            "gen_ai_client_operation_duration_seconds",
            "GenAI operation duration.",
            labels,
            durations,
            DURATION_BUCKETS,
        )
        yield _histogram(
            "gen_ai_client_token_usage", "Number of input and output tokens used.",
            ["gen_ai_provider_name", "gen_ai_request_model", "gen_ai_operation_name", "gen_ai_token_type"], tokens, TOKEN_BUCKETS,
        )  # fmt: skip
        yield _histogram(
            "luminaguard_gen_ai_time_to_first_token_seconds",
            "Time to the first streamed token.",
            labels[:3],
            ttft,
            TTFT_BUCKETS,
        )
        requests = CounterMetricFamily(
            "luminaguard_gen_ai_requests",
            "Model requests by outcome.",
            labels=["gen_ai_provider_name", "gen_ai_request_model", "task_type", "outcome"],
        )
        cost = CounterMetricFamily(
            "luminaguard_gen_ai_cost_usd",
            "Model spend in US dollars.",
            labels=["gen_ai_provider_name", "gen_ai_request_model"],
        )
        wins = GaugeMetricFamily(
            "luminaguard_gen_ai_win_rate",
            "Share of successful responses that won (see docs).",
            labels=["gen_ai_provider_name", "gen_ai_request_model", "task_type"],
        )
        for (provider, model, task), (n, ok, won) in sorted(counts.items()):
            requests.add_metric([provider, model, task, "success"], ok)
            requests.add_metric([provider, model, task, "error"], n - ok)
            wins.add_metric([provider, model, task], round(won / ok, 4) if ok else 0.0)
        for (provider, model), value in sorted(spend.items()):
            cost.add_metric([provider, model], value)
        yield requests
        yield cost
        yield wins


def registry(rows: list[Row]) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(ProviderCollector(rows))
    return reg


def prometheus_text(rows: list[Row]) -> str:
    return generate_latest(registry(rows)).decode("utf-8")


def json_snapshot(rows: list[Row], since: float | None, until: float | None) -> str:
    data: dict[str, Any] = {"range": {"since": since, "until": until}, "providers": summarise(rows)}
    return json.dumps(data, indent=2)
