"""How soon a card made by a run reaches the web inbox: from the card's insert
into the inbox to the `changed` event the open page gets (which reloads it),
beside the insert itself, measured in the same run. And a `/metrics` scrape
with 10,000 recorded model requests, beside `/healthz` on the same service.

    python bench/inbox_bench.py [--n 20] [--json]

The service is started for the run, on a temporary data directory.
"""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

from luminaguard.stats import bench_cli, percentiles, series_line

REQUESTS = 10_000


def main(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(XDG_STATE_HOME=tmp, XDG_CONFIG_HOME=tmp)
        from luminaguard.core.card import DiffCard
        from luminaguard.core.risk import Assessment, Risk
        from luminaguard.llm.metrics import ProviderMetrics
        from luminaguard.messages import AssistantTurn, Usage
        from luminaguard.policy.inbox import InboxStore

        metrics = ProviderMetrics(Path(tmp) / "luminaguard" / "metrics.db")
        turn = AssistantTurn(content="ok", usage=Usage(10, 5), cost_usd=0.001, ttft_s=0.1)
        for i in range(REQUESTS):
            metrics.record(
                request_id=f"r{i}",
                spec=f"openai/m{i % 5}",
                task_type=("plan", "act")[i % 2],
                duration_s=0.2 + (i % 100) / 1000,
                turn=turn if i % 10 else None,
                error_type=None if i % 10 else "timeout",
            )
        metrics.close()

        service = subprocess.Popen(
            [sys.executable, "-m", "luminaguard", "serve"], stdout=subprocess.PIPE, text=True
        )
        try:
            assert service.stdout is not None
            url = re.search(r"http://\S+", service.stdout.readline())
            assert url
            parts = urllib.parse.urlsplit(url.group(0))
            token = urllib.parse.parse_qs(parts.query)["token"][0]
            conn = http.client.HTTPConnection("127.0.0.1", parts.port, timeout=30)
            conn.request("GET", "/events", headers={"Cookie": f"luminaguard_token={token}"})
            events = conn.getresponse()

            def changed() -> None:
                while events.readline().strip() != b"data: changed":
                    pass

            store = InboxStore(Path(tmp) / "luminaguard" / "inbox.db")
            card = DiffCard(
                tool="write_file",
                arguments={"path": "x", "content": "y"},
                assessment=Assessment.of(Risk.YELLOW, "creates", "creates a file"),
                kind="file",
            )
            insert, seen = [], []
            time.sleep(0.3)  # the stream is open
            for _ in range(n):
                t = time.perf_counter()
                item = store.put(card)
                insert.append((time.perf_counter() - t) * 1000)
                changed()
                seen.append((time.perf_counter() - t) * 1000)
                store.decide(item, approved=False, by="bench")
                changed()
            store.close()
            conn.close()
            scrape, health = [], []
            for _ in range(n):
                for path, out in (("/metrics", scrape), ("/healthz", health)):
                    t = time.perf_counter()
                    c = http.client.HTTPConnection("127.0.0.1", parts.port, timeout=30)
                    c.request("GET", path, headers={"Authorization": f"Bearer {token}"})
                    response = c.getresponse()
                    body = response.read()
                    out.append((time.perf_counter() - t) * 1000)
                    assert response.status == 200, body
                    c.close()
        finally:
            service.terminate()
            service.wait(30)
    return {
        "card_to_page_event": percentiles(seen),
        "baseline_insert": percentiles(insert),
        "metrics_scrape_10k_requests": percentiles(scrape),
        "baseline_healthz": percentiles(health),
    }


def show(result: dict[str, Any]) -> None:
    for name, series in result.items():
        print(series_line(name, series))


if __name__ == "__main__":
    bench_cli(main, 20, show)
