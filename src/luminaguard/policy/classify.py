"""The static classifier of any action: a tool name, its arguments, and for
MCP tools their annotations. Pure; the combined level is the strictest part.

MCP annotations are hints from the server. They are believed only for
servers the configuration marks trusted; for any other server they are
ignored, and a tool is taken as the MCP specification says a tool without
annotations must be: possibly destructive, and open-world.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from luminaguard.core.risk import Assessment, Risk
from luminaguard.policy.hostfiles import classify_host_files

if TYPE_CHECKING:
    from luminaguard.core.paths import WorkspaceView

READS = ("read_file", "list_dir", "search")


def classify_action(
    tool: str,
    args: Mapping[str, Any],
    *,
    ws: WorkspaceView | None,
    annotations: Mapping[str, Any] | None = None,
    trusted: bool = False,
    open_world_read: Risk = Risk.RED,
) -> Assessment:
    if tool.startswith("mcp:"):
        return classify_mcp(tool, annotations if trusted else None, open_world_read=open_world_read)
    if tool == "shell":
        command = args.get("command")
        if not isinstance(command, str):
            return Assessment.of(Risk.RED, "invalid-arguments", "shell needs a string `command`")
        from luminaguard.policy.shell import classify_shell

        return classify_shell(command, ws)
    if tool in (*READS, "write_file", "delete_file"):
        return classify_file_tool(tool, args, ws)
    return Assessment.of(Risk.RED, "unknown-tool", f"{tool} is not a tool LuminaGuard can classify")


def classify_file_tool(tool: str, args: Mapping[str, Any], ws: WorkspaceView | None) -> Assessment:
    from luminaguard.policy.shell import classify_path

    path = args.get("path", ".")
    if not isinstance(path, str):
        return Assessment.of(Risk.RED, "invalid-arguments", f"{tool} needs a string `path`")
    found = classify_path(tool, path, ws, reading=tool in READS)
    if found is not None:
        return found
    if tool in READS:
        return Assessment.of(Risk.GREEN, "read-only", f"{tool} only reads the workspace")
    host = classify_host_files(tool, [path])
    if host is not None:
        return host
    if tool == "delete_file":
        return Assessment.of(Risk.ORANGE, "delete", f"delete_file removes {path}")
    exists = ws.exists(path) if ws is not None else True
    if exists:
        return Assessment.of(Risk.ORANGE, "overwrite", f"write_file replaces existing {path}")
    return Assessment.of(Risk.YELLOW, "new-file", f"write_file creates {path}")


def classify_mcp(
    tool: str, annotations: Mapping[str, Any] | None, *, open_world_read: Risk = Risk.RED
) -> Assessment:
    """Levels from MCP tool annotations (already filtered by trust).

    Missing hints take the specification's defaults: readOnlyHint false,
    destructiveHint true, openWorldHint true.
    """
    a = annotations or {}
    read_only = a.get("readOnlyHint") is True
    destructive = a.get("destructiveHint", True) is not False
    open_world = a.get("openWorldHint", True) is not False
    source = (
        "its trusted annotations"
        if annotations
        else "no trusted annotations (MCP defaults: may be destructive, open-world)"
    )
    if read_only and not open_world:
        return Assessment.of(Risk.GREEN, "mcp-read-only", f"{tool} only reads, by {source}")
    if read_only:
        return Assessment.of(
            open_world_read,
            "mcp-open-world-read",
            f"{tool} reads from the outside world, by {source}",
        )
    if open_world:
        return Assessment.of(
            Risk.RED, "mcp-open-world", f"{tool} may act on the outside world, by {source}"
        )
    if destructive:
        return Assessment.of(
            Risk.ORANGE, "mcp-destructive", f"{tool} may change or delete state, by {source}"
        )
    return Assessment.of(Risk.YELLOW, "mcp-additive", f"{tool} only adds state, by {source}")
