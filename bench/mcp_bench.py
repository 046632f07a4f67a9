"""Tool-call overhead of LuminaGuard's MCP layer against a bare SDK session to
the same server, in the same run.

    python bench/mcp_bench.py [--n 200] [--starts 5] [--first-use] [--json]

Server: server-everything's `echo` over stdio, from the project's cache
(`make mcp-servers`). Three series: the bare SDK `ClientSession.call_tool`;
our `McpServerHandle.call_tool` with the server on the host (the same
process setup as the bare session); and ours with the server sandboxed.
The series are interleaved call by call.

Start to the first tool list, for an npx and a uvx reference server
(server-everything, mcp-server-time), installed: a bare SDK session to the
server on the host beside ours, sandboxed, taking turns. With --first-use,
also the first use of each: its install into an empty cache, timed once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from luminaguard.config import McpServer, SandboxSettings
from luminaguard.mcp.client import McpServerHandle
from luminaguard.mcp.launch import resolve_npx, resolve_uvx
from luminaguard.stats import percentiles, series_line

CACHE = Path(__file__).resolve().parent.parent / ".cache" / "mcp"


async def main(n: int) -> dict[str, Any]:
    """The three series take turns call by call, so drift in the machine's
    speed during the run lands on all of them alike."""
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    argv = [*resolve_npx("@modelcontextprotocol/server-everything", CACHE), "stdio"]
    async with AsyncExitStack() as stack:
        params = StdioServerParameters(command=argv[0], args=argv[1:])
        streams = await stack.enter_async_context(stdio_client(params))
        session = await stack.enter_async_context(ClientSession(streams[0], streams[1]))
        await session.initialize()
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        handles = {}
        for name, sandbox in (("luminaguard_host", False), ("luminaguard_sandboxed", True)):
            cfg = McpServer(command=argv[0], args=argv[1:], sandbox=sandbox)
            h = McpServerHandle(
                name, cfg, workspace=tmp, data_dir=tmp / "state", sandbox=SandboxSettings()
            )
            stack.push_async_callback(h.close)
            handles[name] = h

        async def bare_call(message: str) -> None:
            await session.call_tool("echo", {"message": message})

        def ours_call(h: McpServerHandle) -> Callable[[str], Awaitable[None]]:
            async def call(message: str) -> None:
                h.render(await h.call_tool("echo", {"message": message}))

            return call

        calls = {"bare_sdk": bare_call, **{k: ours_call(h) for k, h in handles.items()}}
        for call in calls.values():
            for _ in range(10):
                await call("warm")
        times: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(n):
            for name, call in calls.items():
                t = time.perf_counter()
                await call("bench")
                times[name].append((time.perf_counter() - t) * 1000)
    result: dict[str, Any] = {name: percentiles(t) for name, t in times.items()}
    b = result["bare_sdk"]["p50_ms"]
    result["ratio_p50_host"] = round(result["luminaguard_host"]["p50_ms"] / b, 2)
    result["ratio_p50_sandboxed"] = round(result["luminaguard_sandboxed"]["p50_ms"] / b, 2)
    return result


STARTS = {
    "npx server-everything": ("npx", ["-y", "@modelcontextprotocol/server-everything", "stdio"]),
    "uvx mcp-server-time": ("uvx", ["mcp-server-time"]),
}


async def startup(n: int) -> dict[str, Any]:
    """Start → first tool list, installed servers: the bare SDK on the host
    against ours (sandboxed, as configured in luminaguard.toml), in turns.
    Shutting a server down (the SDK waits up to 2 s for one that ignores a
    closed stdin) is not timed."""
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    result: dict[str, Any] = {}
    for label, (command, args) in STARTS.items():
        if command == "npx":
            argv = [*resolve_npx(args[1], CACHE), *args[2:]]
        else:
            argv = [str(resolve_uvx([args[0]], args[0], CACHE))]
        bare, ours = [], []
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(n):
                t = time.perf_counter()
                params = StdioServerParameters(command=argv[0], args=argv[1:])
                async with stdio_client(params) as streams, ClientSession(*streams[:2]) as s:
                    await s.initialize()
                    await s.list_tools()
                    # Until the tools are listed; the shutdown is not timed.
                    bare.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                h = McpServerHandle(
                    "bench",
                    McpServer(command=command, args=args),
                    workspace=Path(tmp),
                    data_dir=Path(tmp) / "state",
                    sandbox=SandboxSettings(),
                    cache_dir=CACHE,
                )
                try:
                    await h.list_tools()
                    ours.append((time.perf_counter() - t) * 1000)
                finally:
                    await h.close()
        result[label] = {"bare_sdk": percentiles(bare), "luminaguard_sandboxed": percentiles(ours)}
    return result


def first_use() -> dict[str, float]:
    """Each server's first use: the install into an empty cache, in seconds."""
    took = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, (command, args) in STARTS.items():
            t = time.perf_counter()
            if command == "npx":
                resolve_npx(args[1], Path(tmp))
            else:
                resolve_uvx([args[0]], args[0], Path(tmp))
            took[label] = round(time.perf_counter() - t, 1)
    return took


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--first-use", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(main(args.n))
    result["start_to_tools"] = asyncio.run(startup(args.starts))
    if args.first_use:
        result["first_use_install_s"] = first_use()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for name in ("bare_sdk", "luminaguard_host", "luminaguard_sandboxed"):
            print(series_line(name, result[name]))
        print(
            f"ratio p50 over the bare SDK: host {result['ratio_p50_host']}x, sandboxed {result['ratio_p50_sandboxed']}x"
        )
        for label, series in result["start_to_tools"].items():
            print(f"start to first tool list, {label}:")
            for name, stats in series.items():
                print("  " + series_line(name, stats))
        for label, seconds in result.get("first_use_install_s", {}).items():
            print(f"first use of {label}: installed in {seconds} s")
