"""A stdio MCP server with one tool, `fetch(url)`, that reads a URL with
urllib (which honours HTTP_PROXY, as the sandbox's allow-list needs)."""

from __future__ import annotations

import urllib.error
import urllib.request

from mcp.server.mcpserver import MCPServer

server: MCPServer = MCPServer("fetch")


@server.tool()
def fetch(url: str) -> str:
    """Read a URL."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return f"{response.status} {response.read().decode()}"
    except urllib.error.HTTPError as exc:
        return f"refused: {exc.code}"
    except OSError as exc:
        return f"failed: {exc}"


if __name__ == "__main__":
    server.run("stdio")
