"""MCP servers as a tool source: each tool is `mcp:<server>/<tool>`.

Annotations feed the classifier only for servers marked `trusted`. A call
cannot be previewed (it may act anywhere the server reaches), so the Diff
Card shows the exact request.

A server that has resources to read also gets `mcp:<server>/resources/list` and
`mcp:<server>/resources/read` (a `/` cannot occur in an MCP tool name, so
these never hide one of its tools). Reading changes nothing: GREEN for a
trusted server or a sandboxed one without network; otherwise the policy's
level for reads from the outside world. Prompts stay with the person (the
protocol means them to be user-controlled): `luminaguard mcp prompts`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from luminaguard.core.risk import Assessment, Risk
from luminaguard.errors import McpServerError, ToolArgumentError, ToolError
from luminaguard.mcp.client import McpServerHandle
from luminaguard.messages import ToolCall, ToolResult, ToolSpec
from luminaguard.policy.classify import classify_mcp
from luminaguard.protocols import Prepared
from luminaguard.tools.base import argument_object


class McpTools:
    def __init__(self, server: McpServerHandle, *, open_world_read: Risk = Risk.RED) -> None:
        self.server = server
        self.open_world_read = open_world_read
        self.tools: dict[str, Any] = {}
        # The two resource tools, for a server that lists resources (found
        # out once, at the first connect).
        self.resource_tools: dict[str, ToolSpec] = {}
        self._resources_checked = False

    async def connect(self) -> None:
        self.server.tools_changed = False
        try:
            listed = await self.server.list_tools()
        except McpServerError as exc:
            raise ToolError(str(exc)) from exc
        self.tools = {f"mcp:{self.server.name}/{t.name}": t for t in listed}
        if not self._resources_checked:
            self._resources_checked = True
            # Only a server with something to read gets the two resource tools
            # (many declare the capability and list nothing).
            try:
                readable = self.server.offers_resources and bool(await self.server.list_resources())
            except McpServerError:
                readable = False
            if readable:
                self.resource_tools = resource_specs(self.server.name)

    async def update(self) -> bool:
        """Re-list after the server said its tools changed; whether they did.
        A server that cannot answer keeps the list it had."""
        if not self.server.tools_changed:
            return False
        before = {name: t.model_dump(mode="json") for name, t in self.tools.items()}
        try:
            await self.connect()
        except ToolError:
            return False
        return before != {name: t.model_dump(mode="json") for name, t in self.tools.items()}

    def specs(self) -> Sequence[ToolSpec]:
        return [
            *(
                ToolSpec(
                    name,
                    t.description or t.title or t.name,
                    dict(t.input_schema or {"type": "object"}),
                )
                for name, t in self.tools.items()
            ),
            *self.resource_tools.values(),
        ]

    def annotations(self, name: str) -> dict[str, Any] | None:
        t = self.tools.get(name)
        if t is None or t.annotations is None:
            return None
        return dict(t.annotations.model_dump(by_alias=True, exclude_none=True))

    def assess(self, call: ToolCall) -> Assessment:
        trusted = self.server.cfg.trusted
        if call.name in self.resource_tools:
            cfg = self.server.cfg
            if trusted or (
                self.server.sandboxed and cfg.network == "none" and not self.server.writes
            ):
                why = (
                    "a trusted server"
                    if trusted
                    else "a sandboxed server without network that cannot write"
                )
                return Assessment.of(
                    Risk.GREEN, "mcp-resource-read", f"{call.name} only reads, from {why}"
                )
            return Assessment.of(
                self.open_world_read,
                "mcp-resource-read",
                f"{call.name} reads what server {self.server.name} fetches (untrusted, may reach the outside world)",
            )
        return classify_mcp(
            call.name,
            self.annotations(call.name) if trusted else None,
            open_world_read=self.open_world_read,
        )

    def _arguments(self, call: ToolCall) -> dict[str, Any]:
        return argument_object(call.name, call.arguments)

    async def prepare(self, call: ToolCall, *, live: bool = False) -> Prepared:
        args = self._arguments(call)
        if call.name in self.resource_tools:
            method = "resources/list" if call.name.endswith("/list") else "resources/read"
            request = {"server": self.server.name, "method": method, **args}
            return Prepared(call, "request", request=request)
        request = {
            "server": self.server.name,
            "tool": call.name.split("/", 1)[1],
            "arguments": args,
            "annotations": self.annotations(call.name),
            "trusted": self.server.cfg.trusted,
            "sandboxed": self.server.sandboxed,
        }
        return Prepared(call, "request", request=request)

    async def apply(self, prepared: Prepared) -> ToolResult:
        """Send the request the card showed (the call's own arguments)."""
        return await self.call(prepared.call)

    def discard(self, prepared: Prepared) -> None:
        pass

    async def call(self, call: ToolCall) -> ToolResult:
        if call.name in self.resource_tools:
            return await self._resources(call.name, self._arguments(call))
        return await self._call(call.name.split("/", 1)[1], self._arguments(call))

    async def _resources(self, name: str, args: dict[str, Any]) -> ToolResult:
        try:
            if name.endswith("/list"):
                listed = await self.server.list_resources()
                lines = [
                    f"{r.uri}  {r.name}" + (f" — {r.description}" if r.description else "")
                    for r in listed
                ]
                return ToolResult(self.server.cut("\n".join(lines) or "no resources"))
            uri = args.get("uri")
            if not isinstance(uri, str) or not uri:
                raise ToolArgumentError(f"{name} needs a `uri` string")
            return ToolResult(self.server.render_contents(await self.server.read_resource(uri)))
        except McpServerError as exc:
            raise ToolError(str(exc)) from exc

    async def _call(self, tool: str, args: dict[str, Any]) -> ToolResult:
        try:
            result = await self.server.call_tool(tool, args)
        except McpServerError as exc:
            raise ToolError(str(exc)) from exc
        text, is_error, data = self.server.render(result)
        return ToolResult(text, is_error=is_error, data=data)


def resource_specs(server: str) -> dict[str, ToolSpec]:
    """`mcp:<server>/resources/list` and `/read`, by name."""
    base = f"mcp:{server}/resources"
    return {
        f"{base}/list": ToolSpec(
            f"{base}/list",
            f"List the resources (documents, files, data) MCP server {server} offers: URI, name, description.",
            {"type": "object", "properties": {}},
        ),
        f"{base}/read": ToolSpec(
            f"{base}/read",
            f"Read one resource of MCP server {server} by its URI.",
            {
                "type": "object",
                "properties": {"uri": {"type": "string", "description": "the resource's URI"}},
                "required": ["uri"],
            },
        ),
    }
