"""`luminaguard doctor` and `luminaguard metrics`: what works here, and how the providers do."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from luminaguard.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
)
from luminaguard.errors import UsageError


def add_doctor(sub: Any) -> None:
    """doctor: what works on this machine."""
    doctor = sub.add_parser("doctor", help="what works on this machine, and why not")
    doctor.add_argument("--json", action="store_true", help="print JSON")
    doctor.set_defaults(handler=cmd_doctor)


def add_metrics(sub: Any) -> None:
    """metrics: provider latency, success, tokens, cost, win rate."""
    metrics = sub.add_parser(
        "metrics", help="provider metrics: latency, success, tokens, cost, win rate"
    )
    metrics.add_argument(
        "--format",
        choices=["table", "json", "prometheus"],
        default="table",
        help="a table for people (default), or json / prometheus for machines",
    )
    metrics.add_argument(
        "--since",
        help="only requests since: a duration (90s, 15m, 2h, 7d) ago, a date (2026-12-01[T09:30]) or a Unix time",
    )
    metrics.add_argument(
        "--until", help="only requests until: a duration ago, a date or a Unix time"
    )
    metrics.set_defaults(handler=cmd_metrics)


def cmd_doctor(args: argparse.Namespace) -> int:
    from luminaguard.doctor import OK, run_checks

    checks = run_checks()
    if args.json:
        print(json.dumps({"checks": [c.to_dict() for c in checks]}, indent=2))
    else:
        marks = {"ok": "✔", "warn": "!", "missing": "✘", "failed": "✘", "unknown": "?"}
        for c in checks:
            print(f"{marks[c.status]} {c.name:<16} {c.detail}")
    return EXIT_ERROR if any(c.required and c.status != OK for c in checks) else EXIT_OK


def cmd_metrics(args: argparse.Namespace) -> int:
    from luminaguard.cli.sandbox import pool_table
    from luminaguard.config import load_settings
    from luminaguard.llm.metrics import ProviderMetrics, summarise
    from luminaguard.metrics import json_snapshot, prometheus_text
    from luminaguard.service.pools import pool_prometheus
    from luminaguard.service_socket import pool_stats_via_service

    settings = load_settings(Path.cwd())
    since, until = _when(args.since, "--since"), _when(args.until, "--until")
    store = ProviderMetrics(settings.data_dir / "metrics.db")
    rows = store.rows(since, until)
    store.close()
    # The warm pools are the local service's (a command's own die with it).
    pools = pool_stats_via_service(settings.data_dir) or []
    if args.format == "prometheus":
        print(prometheus_text(rows), end="")
        if pools:
            print("\n".join(pool_prometheus(pools)))
    elif args.format == "json":
        data = json.loads(json_snapshot(rows, since, until))
        print(json.dumps({**data, "pools": pools}, indent=2))
    else:
        print(metrics_table(summarise(rows)))
        if pools:
            print("\nwarm pools (the local service's):\n" + pool_table(pools))
    return EXIT_OK


def metrics_table(summary: list[dict[str, Any]]) -> str:
    """The summary for a person: one line per provider, model and task type."""
    if not summary:
        return "no model requests recorded (in this range)"
    head = (
        "provider",
        "model",
        "task",
        "requests",
        "ok",
        "p50 s",
        "p95 s",
        "tokens in/out",
        "cost $",
        "wins",
    )

    def secs(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    lines = [
        (
            s["provider"],
            s["model"],
            s["task_type"],
            str(s["requests"]),
            f"{s['success_rate']:.0%}",
            secs(s["latency_s"]["p50"]),
            secs(s["latency_s"]["p95"]),
            f"{s['tokens_in']}/{s['tokens_out']}",
            f"{s['cost_usd']:.4f}",
            f"{s['win_rate']:.0%}",
        )
        for s in summary
    ]
    widths = [max(len(row[i]) for row in (head, *lines)) for i in range(len(head))]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i < 3 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in (head, *lines)
    )


def _when(text: str | None, flag: str) -> float | None:
    import re
    import time

    if text is None:
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text.strip())
    if m:
        return (
            time.time() - float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
        )
    try:
        return float(text)
    except ValueError:
        pass
    import datetime

    try:
        when = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"{flag} takes a duration like 15m, 2h or 7d, a date like 2026-12-01 "
            f"(or 2026-12-01T09:30, local time unless it says), or a Unix time; got {text!r}"
        ) from None
    return when.timestamp()
