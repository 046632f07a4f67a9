"""Tool-call overhead of LuminaGuard's MCP layer against a bare SDK session to
the same server, in the same run.

    python bench/mcp_bench.py [--n 200] [--json]

Server: server-everything's `echo` over stdio, from the project's cache
(`make mcp-servers`). Three series: the bare SDK `ClientSession.call_tool`;
our `McpServerHandle.call_tool` with the server on the host (the same
process setup as the bare session); and ours with the server sandboxed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from luminaguard.config import McpServer, SandboxSettings
from luminaguard.mcp.client import McpServerHandle
from luminaguard.mcp.launch import resolve_npx
from luminaguard.sandbox.bench import percentiles

CACHE = Path(__file__).resolve().parent.parent / ".cache" / "mcp"


async def bare(argv: list[str], n: int) -> list[float]:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    out = []
    params = StdioServerParameters(command=argv[0], args=argv[1:])
    async with stdio_client(params) as streams, ClientSession(streams[0], streams[1]) as session:
        await session.initialize()
        for _ in range(10):
            await session.call_tool("echo", {"message": "warm"})
        for _ in range(n):
            t = time.perf_counter()
            await session.call_tool("echo", {"message": "bench"})
            out.append((time.perf_counter() - t) * 1000)
    return out


async def ours(argv: list[str], n: int, sandbox: bool) -> list[float]:
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = McpServer(command=argv[0], args=argv[1:], sandbox=sandbox)
        h = McpServerHandle(
            "bench",
            cfg,
            workspace=Path(tmp),
            data_dir=Path(tmp) / "state",
            sandbox=SandboxSettings(),
        )
        try:
            for _ in range(10):
                await h.call_tool("echo", {"message": "warm"})
            for _ in range(n):
                t = time.perf_counter()
                h.render(await h.call_tool("echo", {"message": "bench"}))
                out.append((time.perf_counter() - t) * 1000)
        finally:
            await h.close()
    return out


async def main(n: int) -> dict[str, Any]:
    argv = [*resolve_npx("@modelcontextprotocol/server-everything", CACHE), "stdio"]
    b = percentiles(await bare(argv, n))
    host = percentiles(await ours(argv, n, sandbox=False))
    boxed = percentiles(await ours(argv, n, sandbox=True))
    return {
        "bare_sdk": b,
        "luminaguard_host": host,
        "luminaguard_sandboxed": boxed,
        "ratio_p50_host": round(host["p50_ms"] / b["p50_ms"], 2),
        "ratio_p50_sandboxed": round(boxed["p50_ms"] / b["p50_ms"], 2),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(main(args.n))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for name in ("bare_sdk", "luminaguard_host", "luminaguard_sandboxed"):
            r = result[name]
            print(
                f"{name:<22} p50 {r['p50_ms']:6.2f} ms  p95 {r['p95_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms"
            )
        print(
            f"ratio p50 over the bare SDK: host {result['ratio_p50_host']}x, sandboxed {result['ratio_p50_sandboxed']}x"
        )
