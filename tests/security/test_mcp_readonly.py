"""No concurrent writer: a sandboxed stdio MCP server gets the workspace
read-only unless the config says `workspace = "write"`, and only a server
that cannot write has its resource reads run without asking."""

from __future__ import annotations

import asyncio
from pathlib import Path

from luminaguard.config import McpServer, SandboxSettings
from luminaguard.core.risk import Risk
from luminaguard.mcp.client import McpServerHandle
from luminaguard.messages import ToolCall
from luminaguard.tools.mcp_tools import McpTools

FILESYSTEM = ["-y", "@modelcontextprotocol/server-filesystem", "/workspace"]


def handle(cfg: McpServer, workspace: Path, data_dir: Path, cache: Path) -> McpServerHandle:
    return McpServerHandle(
        "fs",
        cfg,
        workspace=workspace,
        data_dir=data_dir,
        sandbox=SandboxSettings(),
        cache_dir=cache,
    )


def test_a_sandboxed_server_cannot_write_the_workspace_by_default(
    workspace: Path, data_dir: Path, mcp_cache: Path
) -> None:
    (workspace / "a.txt").write_text("inside")

    async def scenario() -> tuple[str, bool]:
        h = handle(McpServer(command="npx", args=FILESYSTEM), workspace, data_dir, mcp_cache)
        try:
            read = h.render(await h.call_tool("read_text_file", {"path": "/workspace/a.txt"}))[0]
            _, failed, _ = h.render(
                await h.call_tool("write_file", {"path": "/workspace/new.txt", "content": "x"})
            )
            return read, failed
        finally:
            await h.close()

    read, failed = asyncio.run(scenario())
    assert read == "inside"
    assert failed and not (workspace / "new.txt").exists()


def test_resource_reads_run_unasked_only_for_a_server_that_cannot_write(
    workspace: Path, data_dir: Path, mcp_cache: Path
) -> None:
    def level(cfg: McpServer) -> Risk:
        tools = McpTools(handle(cfg, workspace, data_dir, mcp_cache))
        tools.resource_tools = {"mcp:fs/resources/read": None}  # type: ignore[dict-item]
        return tools.assess(ToolCall("c", "mcp:fs/resources/read", {"uri": "x"})).risk

    assert level(McpServer(command="npx", args=FILESYSTEM)) == Risk.GREEN
    assert level(McpServer(command="npx", args=FILESYSTEM, workspace="write")) == Risk.RED
