"""One streamed model request on loopback: the wire's own HTTP client
(``llm/http.py``, a kept-alive connection) beside httpx's ``AsyncClient``
streaming the same request from the same scripted server; the two take turns.

    python bench/http_bench.py [--n 200] [--json]

Both read the answer's server-sent events line by line; the request is an
OpenAI chat completion of one short answer.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx

from luminaguard.llm.http import Client
from luminaguard.llm.scripted_server import Script, ScriptedServer
from luminaguard.stats import bench_cli, percentiles, ratios_p50, series_line

BODY = {
    "model": "gpt-test",
    "messages": [{"role": "user", "content": "hi"}],
    "stream": True,
}


class Done(Script):
    def __init__(self) -> None:
        super().__init__([])

    def next(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"content": "done"}


async def _ours(client: Client, url: str) -> int:
    async with client.post(url, json.dumps(BODY).encode(), {"Authorization": "Bearer k"}) as r:
        return len([line async for line in r.lines()])


async def _httpx(client: httpx.AsyncClient, url: str) -> int:
    async with client.stream("POST", url, json=BODY, headers={"Authorization": "Bearer k"}) as r:
        return len([line async for line in r.aiter_lines()])


def main(n: int) -> dict[str, Any]:
    with ScriptedServer([]) as server:
        server.script = Done()
        url = server.base_url + "/v1/chat/completions"

        async def measure() -> dict[str, list[float]]:
            ours, theirs = Client(30), httpx.AsyncClient(timeout=30)
            series: dict[str, list[float]] = {"httpx": [], "ours": []}
            try:
                await _ours(ours, url), await _httpx(theirs, url)  # warm both
                for _ in range(n):
                    started = time.perf_counter()
                    assert await _httpx(theirs, url) > 0
                    series["httpx"].append((time.perf_counter() - started) * 1000)
                    started = time.perf_counter()
                    assert await _ours(ours, url) > 0
                    series["ours"].append((time.perf_counter() - started) * 1000)
            finally:
                ours.close()
                await theirs.aclose()
            return series

        series = asyncio.run(measure())
    out: dict[str, Any] = {name: percentiles(s) for name, s in series.items()}
    out["ratios_p50"] = ratios_p50(out, ["ours"], base="httpx")
    return out


def show(result: dict[str, Any]) -> None:
    for name in ("httpx", "ours"):
        print(series_line(name, result[name]))
    print(f"ours / httpx (p50): {result['ratios_p50']['ours']}x")


if __name__ == "__main__":
    bench_cli(main, 200, show)
