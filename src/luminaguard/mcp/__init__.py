"""MCP client on the official `mcp` SDK: stdio (sandboxed by default) and
Streamable HTTP servers from `[mcp.servers.NAME]`."""
