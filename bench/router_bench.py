"""Router selection cost at 10 / 1,000 / 10,000 deployments, and the time from
CLI start to the first provider request.

    python bench/router_bench.py [--json]

- selection: `Router.select` on one group, with 10% of the deployments
  cooling down, beside an empty Python call measured in the same run;
- start-up: `luminaguard run --model openai/...` against the scripted server
  on loopback; the time from process start until the server sees the
  request (median of several runs), beside a bare Python POST (urllib) to the
  same kind of server, the two taking turns.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from luminaguard.config import RouterGroup, RouterSettings
from luminaguard.llm.router import Router
from luminaguard.llm.scripted_server import ScriptedServer
from luminaguard.stats import percentiles


def selection(n: int, samples: int = 20000) -> dict[str, Any]:
    settings = RouterSettings(groups={"g": RouterGroup(models=[f"openai/m{i}" for i in range(n)])})
    router = Router(settings, lambda spec: None)  # type: ignore[arg-type,return-value]
    group = router.groups["g"]
    for d in group.deployments[::10]:
        d.cooldown_until = time.monotonic() + 3600
    took, base = [], []
    for _ in range(samples):
        t = time.perf_counter()
        router.select(group)
        took.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        (lambda: None)()
        base.append((time.perf_counter() - t) * 1000)
    return {"deployments": n, "select": percentiles(took), "baseline_empty_call": percentiles(base)}


BARE_POST = """
import json, sys, urllib.request
body = json.dumps({"model": "bench", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
request = urllib.request.Request(sys.argv[1] + "/chat/completions", body.encode(),
                                 {"Content-Type": "application/json", "Authorization": "Bearer k"})
urllib.request.urlopen(request).read()
"""


def startup(runs: int = 7) -> dict[str, Any]:
    """CLI start → the first request reaching a loopback OpenAI-compatible
    endpoint, beside a bare Python POST to the same kind of endpoint (the
    floor), taking turns."""
    series: dict[str, list[float]] = {"cli": [], "bare": []}
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "ws"
        ws.mkdir()
        for _ in range(runs):
            for name in series:
                server = ScriptedServer([{"content": "done"}]).start()
                seen = threading.Event()
                original = server.script.next

                def mark(
                    request: dict[str, Any], original: Any = original, seen: threading.Event = seen
                ) -> dict[str, Any]:
                    seen.set()
                    return original(request)

                server.script.next = mark  # type: ignore[method-assign]
                env = {
                    **os.environ,
                    "OPENAI_BASE_URL": server.base_url + "/v1",
                    "OPENAI_API_KEY": "k",
                    "XDG_STATE_HOME": tmp,
                }
                argv = (
                    [sys.executable, "-m", "luminaguard", "run", "hi", "--workspace", str(ws),
                     "--model", "openai/bench"]
                    if name == "cli"
                    else [sys.executable, "-c", BARE_POST, server.base_url + "/v1"]
                )  # fmt: skip
                t = time.perf_counter()
                proc = subprocess.Popen(
                    argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
                seen.wait(60)
                series[name].append((time.perf_counter() - t) * 1000)
                proc.wait(60)
                server.stop()
    cli, bare = statistics.median(series["cli"]), statistics.median(series["bare"])
    return {
        "cli_start_to_first_request_ms": {"median": round(cli, 1), **percentiles(series["cli"])},
        "baseline_bare_python_post_ms": {
            "median": round(bare, 1),
            **percentiles(series["bare"]),
        },
        "ratio_median": round(cli / bare, 2),
    }


def main() -> None:
    import compileall
    import re

    import luminaguard

    # An installed package has its .pyc files; PYTHONDONTWRITEBYTECODE would hide that.
    compileall.compile_dir(
        os.path.dirname(luminaguard.__file__), quiet=1, rx=re.compile("demo/project")
    )
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = {"selection": [selection(n) for n in (10, 1000, 10000)], "startup": startup()}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for s in result["selection"]:
        print(
            f"select among {s['deployments']:>6} deployments: p50 {s['select']['p50_ms'] * 1000:.2f} µs  p99 {s['select']['p99_ms'] * 1000:.2f} µs   (empty call p50 {s['baseline_empty_call']['p50_ms'] * 1000:.2f} µs)"
        )
    st = result["startup"]
    print(
        f"CLI start → first provider request: median {st['cli_start_to_first_request_ms']['median']} ms "
        f"(p95 {st['cli_start_to_first_request_ms']['p95_ms']:.0f}); a bare Python POST: median "
        f"{st['baseline_bare_python_post_ms']['median']} ms; ratio {st['ratio_median']}x"
    )


if __name__ == "__main__":
    main()
