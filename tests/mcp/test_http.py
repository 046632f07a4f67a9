"""Streamable HTTP against server-everything in its HTTP mode, on loopback."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from luminaguard.config import McpServer, SandboxSettings
from luminaguard.errors import McpServerError
from luminaguard.mcp.client import McpServerHandle
from luminaguard.mcp.launch import resolve_npx


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


class HttpServer:
    def __init__(self, cache: Path, mode: str = "streamableHttp") -> None:
        self.argv = [*resolve_npx("@modelcontextprotocol/server-everything", cache), mode]
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv,
            env={**os.environ, "PORT": str(self.port)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("server-everything did not start listening")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


def web_handle(cfg: McpServer, workspace: Path, data_dir: Path) -> McpServerHandle:
    return McpServerHandle(
        "web", cfg, workspace=workspace, data_dir=data_dir, sandbox=SandboxSettings()
    )


@pytest.fixture
def http_server(mcp_cache: Path) -> Iterator[HttpServer]:
    server = HttpServer(mcp_cache)
    server.start()
    yield server
    server.stop()


def test_tools_over_streamable_http_and_recovery_after_a_server_restart(
    http_server: HttpServer, workspace: Path, data_dir: Path
) -> None:
    cfg = McpServer(url=f"http://127.0.0.1:{http_server.port}/mcp", timeout_s=10)

    async def scenario() -> None:
        h = web_handle(cfg, workspace, data_dir)
        try:
            names = {t.name for t in await h.list_tools()}
            assert "echo" in names
            assert (
                h.render(await h.call_tool("echo", {"message": "over http"}))[0]
                == "Echo: over http"
            )
            # The server restarts: its sessions are gone (it answers 404 to the old one).
            http_server.stop()
            http_server.start()
            # The client notices, starts a new session and repeats the request once.
            assert h.render(await h.call_tool("echo", {"message": "again"}))[0] == "Echo: again"
            assert h.starts == 2
        finally:
            await h.close()

    asyncio.run(scenario())


@pytest.fixture
def sse_server(mcp_cache: Path) -> Iterator[HttpServer]:
    server = HttpServer(mcp_cache, "sse")
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("transport", ["auto", "sse"])
def test_a_legacy_sse_server_is_reached_over_its_own_transport(
    sse_server: HttpServer, workspace: Path, data_dir: Path, transport: str
) -> None:
    cfg = McpServer(
        url=f"http://127.0.0.1:{sse_server.port}/sse", timeout_s=10, transport=transport
    )

    async def scenario() -> None:
        h = web_handle(cfg, workspace, data_dir)
        try:
            assert "echo" in {t.name for t in await h.list_tools()}
            assert h.transport == "sse"
            assert h.render(await h.call_tool("echo", {"message": "legacy"}))[0] == "Echo: legacy"
        finally:
            await h.close()

    asyncio.run(scenario())


def test_a_streamable_server_is_not_taken_for_a_legacy_one(
    http_server: HttpServer, workspace: Path, data_dir: Path
) -> None:
    cfg = McpServer(url=f"http://127.0.0.1:{http_server.port}/mcp", timeout_s=10)

    async def scenario() -> None:
        h = web_handle(cfg, workspace, data_dir)
        try:
            await h.list_tools()
            assert h.transport == "streamable-http"
        finally:
            await h.close()

    asyncio.run(scenario())


def test_a_url_that_speaks_neither_transport_is_one_error(
    http_server: HttpServer, workspace: Path, data_dir: Path
) -> None:
    cfg = McpServer(url=f"http://127.0.0.1:{http_server.port}/nothing-here", timeout_s=5)

    async def scenario() -> None:
        h = web_handle(cfg, workspace, data_dir)
        try:
            with pytest.raises(
                McpServerError,
                match=r"is not an MCP server \(Streamable HTTP: .*; legacy SSE: HTTP 404",
            ):
                await asyncio.wait_for(h.list_tools(), 30)
        finally:
            await h.close()

    asyncio.run(scenario())
