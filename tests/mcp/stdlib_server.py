"""A minimal MCP server on the standard library alone (stdio, newline-delimited
JSON-RPC), for a sandbox whose image has python3 and nothing else: the
micro-VM's guest. Its one tool says where it runs and reads a workspace file."""

import json
import os
import sys

TOOLS = [
    {
        "name": "where",
        "description": "The kernel it runs on, its uid, and a workspace file.",
        "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}}},
    }
]


def answer(request: dict) -> dict | None:
    method, params = request.get("method"), request.get("params") or {}
    if method == "initialize":
        return {
            "protocolVersion": params.get("protocolVersion", "2025-06-18"),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "stdlib", "version": "1"},
        }
    if method == "ping":
        return {}
    if method == "tools/list":
        return {"tools": TOOLS}
    if method == "tools/call":
        path = params.get("arguments", {}).get("path", "")
        try:
            with open(os.path.join("/workspace", path)) as f:
                text = f.read()
        except OSError as exc:
            text = f"unreadable: {exc.strerror}"
        try:
            with open(os.path.join("/workspace", "written-by-server"), "w") as f:
                f.write("x")
            wrote = "wrote the workspace"
        except OSError:
            wrote = "cannot write the workspace"
        where = f"{os.uname().release} uid={os.getuid()} {wrote} {text}"
        return {"content": [{"type": "text", "text": where}]}
    raise LookupError(method)


for line in sys.stdin:
    request = json.loads(line)
    if "id" not in request:
        continue  # a notification
    try:
        reply = {"jsonrpc": "2.0", "id": request["id"], "result": answer(request)}
    except LookupError as exc:
        reply = {
            "jsonrpc": "2.0",
            "id": request["id"],
            "error": {"code": -32601, "message": str(exc)},
        }
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()
