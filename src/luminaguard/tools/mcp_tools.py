"""MCP servers as a tool source: each tool is `mcp:<server>/<tool>`.

Annotations feed the classifier only for servers marked `trusted`. A call
cannot be previewed (it may act anywhere the server reaches), so the Diff
Card shows the exact request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from luminaguard.errors import ToolError
from luminaguard.mcp.client import McpServerError, McpServerHandle
from luminaguard.messages import ToolCall, ToolResult, ToolSpec
from luminaguard.policy.classify import classify_mcp
from luminaguard.policy.risk import Assessment, Risk
from luminaguard.protocols import Prepared
from luminaguard.tools.base import argument_object


class McpTools:
    def __init__(self, server: McpServerHandle, *, open_world_read: Risk = Risk.RED) -> None:
        self.server = server
        self.open_world_read = open_world_read
        self.tools: dict[str, Any] = {}

    async def connect(self) -> None:
        self.server.tools_changed = False
        try:
            listed = await self.server.list_tools()
        except McpServerError as exc:
            raise ToolError(str(exc)) from exc
        self.tools = {f"mcp:{self.server.name}/{t.name}": t for t in listed}

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
            ToolSpec(
                name, t.description or t.title or t.name, dict(t.input_schema or {"type": "object"})
            )
            for name, t in self.tools.items()
        ]

    def annotations(self, name: str) -> dict[str, Any] | None:
        t = self.tools.get(name)
        if t is None or t.annotations is None:
            return None
        return dict(t.annotations.model_dump(by_alias=True, exclude_none=True))

    def assess(self, call: ToolCall) -> Assessment:
        trusted = self.server.cfg.trusted
        return classify_mcp(
            call.name,
            self.annotations(call.name) if trusted else None,
            open_world_read=self.open_world_read,
        )

    def _arguments(self, call: ToolCall) -> dict[str, Any]:
        return argument_object(call.name, call.arguments)

    async def prepare(self, call: ToolCall) -> Prepared:
        args = self._arguments(call)
        tool = call.name.split("/", 1)[1]
        request = {
            "server": self.server.name,
            "tool": tool,
            "arguments": args,
            "annotations": self.annotations(call.name),
            "trusted": self.server.cfg.trusted,
            "sandboxed": self.server.sandboxed,
        }

        async def send() -> ToolResult:
            return await self._call(tool, args)

        return Prepared("request", send, request=request)

    async def call(self, call: ToolCall) -> ToolResult:
        return await self._call(call.name.split("/", 1)[1], self._arguments(call))

    async def _call(self, tool: str, args: dict[str, Any]) -> ToolResult:
        try:
            result = await self.server.call_tool(tool, args)
        except McpServerError as exc:
            raise ToolError(str(exc)) from exc
        text, is_error, data = self.server.render(result)
        return ToolResult(text, is_error=is_error, data=data)
