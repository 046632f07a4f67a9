"""`luminaguard run` from its start to its first request to an
OpenAI-compatible endpoint on loopback, beside a bare Python process POSTing
to the same endpoint; the two take turns.

    python bench/run_start_bench.py [--n 10] [--json]

The endpoint is the scripted provider in the OpenAI wire format, in this
process: it notes when each request arrives (the same clock as the start).
The speed issue's goal: the run at most 3x the bare POST (p50).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from luminaguard.llm.scripted_server import Script, ScriptedServer
from luminaguard.stats import bench_cli, percentiles, series_line

POST = """
import json, sys, urllib.request
body = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}
request = urllib.request.Request(sys.argv[1] + "/chat/completions", data=json.dumps(body).encode(),
    headers={"Content-Type": "application/json", "Authorization": "Bearer k"})
urllib.request.urlopen(request).read()
"""


class Arrivals(Script):
    """The playbook, answering "done" each time, and when each request came."""

    def __init__(self) -> None:
        super().__init__([])
        self.arrived: list[float] = []

    def next(self, request: dict[str, Any]) -> dict[str, Any]:
        self.arrived.append(time.perf_counter())
        return {"content": "done"}


def first_request(argv: list[str], env: dict[str, str], script: Arrivals) -> float:
    """ms from starting ``argv`` to its first request's arrival (the process is waited for)."""
    before = len(script.arrived)
    started = time.perf_counter()
    proc = subprocess.run(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    if proc.returncode != 0 or len(script.arrived) == before:
        raise SystemExit(f"{argv[:4]} failed: {proc.stderr.strip()}")
    return (script.arrived[before] - started) * 1000


def main(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, ScriptedServer([]) as server:
        server.script = Arrivals()
        base = server.base_url + "/v1"
        env = {
            **os.environ,
            "XDG_STATE_HOME": tmp,
            "XDG_CONFIG_HOME": tmp,
            "OPENAI_BASE_URL": base,
            "OPENAI_API_KEY": "k",
        }
        ws = Path(tmp) / "ws"
        ws.mkdir()
        commands = {
            "baseline_post": [sys.executable, "-c", POST, base],
            "run_first_request": [
                sys.executable, "-m", "luminaguard", "run", "hi", "--workspace", str(ws),
                "--model", "openai/gpt-test", "--approver", "none",
            ],
        }  # fmt: skip
        for argv in commands.values():  # warm the page cache and the self-test cache
            first_request(argv, env, server.script)  # type: ignore[arg-type]
        series: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(n):
            for name, argv in commands.items():
                series[name].append(first_request(argv, env, server.script))  # type: ignore[arg-type]
    out: dict[str, Any] = {name: percentiles(s) for name, s in series.items()}
    out["ratio_p50_run_over_post"] = round(
        out["run_first_request"]["p50_ms"] / out["baseline_post"]["p50_ms"], 2
    )
    return out


def show(result: dict[str, Any]) -> None:
    for name in ("baseline_post", "run_first_request"):
        print(series_line(name, result[name]))
    print(f"run / bare POST (p50): {result['ratio_p50_run_over_post']}x (goal <= 3x)")


if __name__ == "__main__":
    bench_cli(main, 10, show)
