"""Several tool sources behind one: the built-ins, OpenAPI APIs, MCP servers."""

from __future__ import annotations

from collections.abc import Sequence

from luminaguard.core.risk import Assessment, Risk
from luminaguard.errors import ToolError
from luminaguard.messages import ToolCall, ToolResult, ToolSpec
from luminaguard.protocols import Prepared, ToolSource


class ToolBox:
    def __init__(self, sources: Sequence[ToolSource]) -> None:
        self.sources = list(sources)
        self._owner: dict[str, ToolSource] = {}
        self._specs: list[ToolSpec] = []
        self.refresh()

    def refresh(self) -> None:
        """Rebuild the name index (after a source's tool list changed)."""
        self._owner, self._specs = {}, []
        for source in self.sources:
            for spec in source.specs():
                if spec.name in self._owner:
                    continue  # the first source to offer a name keeps it
                self._owner[spec.name] = source
                self._specs.append(spec)

    def specs(self) -> Sequence[ToolSpec]:
        return self._specs

    async def update(self) -> bool:
        return await self.changes() is not None

    async def changes(self) -> tuple[list[str], list[str]] | None:
        """Let sources whose tools can change (MCP servers) re-list; the names
        added and removed, or None when nothing changed."""
        changed = False
        for source in self.sources:
            changed = await source.update() or changed
        if not changed:
            return None
        before = set(self._owner)
        self.refresh()
        return sorted(set(self._owner) - before), sorted(before - set(self._owner))

    def _source(self, call: ToolCall) -> ToolSource:
        try:
            return self._owner[call.name]
        except KeyError:
            raise ToolError(f"unknown tool {call.name!r}") from None

    def assess(self, call: ToolCall) -> Assessment:
        if call.name not in self._owner:
            return Assessment.of(Risk.RED, "unknown-tool", f"{call.name} is not a known tool")
        return self._source(call).assess(call)

    async def prepare(self, call: ToolCall, *, live: bool = False) -> Prepared:
        return await self._source(call).prepare(call, live=live)

    async def call(self, call: ToolCall) -> ToolResult:
        return await self._source(call).call(call)

    async def apply(self, prepared: Prepared) -> ToolResult:
        return await self._source(prepared.call).apply(prepared)

    def discard(self, prepared: Prepared) -> None:
        self._source(prepared.call).discard(prepared)
