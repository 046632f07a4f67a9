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
    metrics.add_argument("--format", choices=["json", "prometheus"], default="json")
    metrics.add_argument(
        "--since", help="only requests since: a duration (90s, 15m, 2h, 7d) ago or a Unix time"
    )
    metrics.add_argument("--until", help="only requests until: a duration ago or a Unix time")
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
    from luminaguard.config import load_settings
    from luminaguard.llm.metrics import ProviderMetrics
    from luminaguard.metrics import json_snapshot, prometheus_text

    settings = load_settings(Path.cwd())
    since, until = _when(args.since, "--since"), _when(args.until, "--until")
    store = ProviderMetrics(settings.data_dir / "metrics.db")
    rows = store.rows(since, until)
    store.close()
    print(
        prometheus_text(rows) if args.format == "prometheus" else json_snapshot(rows, since, until),
        end="" if args.format == "prometheus" else "\n",
    )
    return EXIT_OK


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
        raise UsageError(
            f"{flag} takes a duration like 15m, 2h or 7d, or a Unix time; got {text!r}"
        ) from None
