"""A stdio MCP server whose tool list changes: `unlock` adds `secret` and
sends `notifications/tools/list_changed`; `lock` removes it again."""

from __future__ import annotations

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations

server: MCPServer = MCPServer("changing")
READ_ONLY = ToolAnnotations(readOnlyHint=True, openWorldHint=False)


def secret() -> str:
    """Tell the secret."""
    return "the secret is 42"


@server.tool(annotations=READ_ONLY)
async def unlock(ctx: Context) -> str:
    """Offer the `secret` tool."""
    server.add_tool(secret, annotations=READ_ONLY)
    await ctx.session.send_tool_list_changed()
    return "unlocked"


@server.tool(annotations=READ_ONLY)
async def lock(ctx: Context) -> str:
    """Withdraw the `secret` tool."""
    server.remove_tool("secret")
    await ctx.session.send_tool_list_changed()
    return "locked"


if __name__ == "__main__":
    server.run("stdio")
