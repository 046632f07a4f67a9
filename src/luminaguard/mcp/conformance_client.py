"""A client for the official MCP conformance harness.

    npx @modelcontextprotocol/conformance client \\
        --command "python -m luminaguard.mcp.conformance_client" --suite core

The harness passes the server URL as the last argument and the scenario in
`MCP_CONFORMANCE_SCENARIO`. It drives LuminaGuard's own client layer
(`McpServerHandle` over Streamable HTTP), not the bare SDK.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from luminaguard.config import McpServer, SandboxSettings
from luminaguard.mcp.client import McpServerHandle


def sample_arguments(schema: dict[str, Any]) -> dict[str, Any]:
    """Plausible arguments for a tool from its input schema."""
    out: dict[str, Any] = {}
    for name, prop in (schema.get("properties") or {}).items():
        kind = prop.get("type")
        if "default" in prop:
            out[name] = prop["default"]
        elif kind in ("number", "integer"):
            out[name] = 1
        elif kind == "boolean":
            out[name] = True
        elif kind == "array":
            out[name] = []
        elif kind == "object":
            out[name] = {}
        else:
            out[name] = "conformance"
    return out


async def accept_with_defaults(
    message: str, schema: dict[str, Any] | None
) -> tuple[str, dict[str, Any]]:
    """The harness's elicitations are answered by accepting every default."""
    props = (schema or {}).get("properties") or {}
    return "accept", {name: prop["default"] for name, prop in props.items() if "default" in prop}


async def run(url: str, scenario: str) -> int:
    with tempfile.TemporaryDirectory(prefix="lg-conformance-") as tmp:
        handle = McpServerHandle(
            "conformance",
            McpServer(url=url, timeout_s=20),
            workspace=Path(tmp),
            data_dir=Path(tmp) / "state",
            sandbox=SandboxSettings(),
        )
        handle.elicit = accept_with_defaults
        try:
            tools = await handle.list_tools()
            if scenario != "initialize":
                for tool in tools:
                    result = await handle.call_tool(
                        tool.name, sample_arguments(dict(tool.input_schema or {}))
                    )
                    print(handle.render(result)[0])
        finally:
            await handle.close()
    return 0


def main() -> int:
    if len(sys.argv) < 2:
        print("usage: python -m luminaguard.mcp.conformance_client URL", file=sys.stderr)
        return 2
    return asyncio.run(run(sys.argv[-1], os.environ.get("MCP_CONFORMANCE_SCENARIO", "")))


if __name__ == "__main__":
    sys.exit(main())
