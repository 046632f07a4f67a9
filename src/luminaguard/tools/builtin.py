"""The built-in tools: read_file, list_dir, search, write_file, delete_file, shell.

They act on the workspace through a ``Sandbox``: commands run inside it, file
operations go through its workspace-confined helpers.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import Field

from luminaguard.core.card import effects_excerpt
from luminaguard.core.effects import unified_diff
from luminaguard.core.risk import Assessment, Risk, strictest
from luminaguard.errors import CommitConflict, ToolArgumentError, ToolError
from luminaguard.messages import ToolCall, ToolResult, ToolSpec
from luminaguard.policy.classify import classify_action
from luminaguard.policy.effects import classify_effects
from luminaguard.protocols import ExecResult, Prepared, Sandbox
from luminaguard.sandbox import snapshot
from luminaguard.sandbox.network import NetworkMode
from luminaguard.sandbox.workspace import Workspace
from luminaguard.tools.base import Tool, tool

READ_LIMIT = 200_000
RERUN = (
    "it needs the network, which a preview does not have: approved, it runs AGAIN, "
    "for real, and what it changes may differ from this card"
)


class Context:
    """What the built-in tools act on."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.ws = Workspace(sandbox.workspace)


def _text(data: bytes, path: str) -> str:
    if b"\x00" in data[:8192]:
        return f"[{path} is a binary file of {len(data)} bytes]"
    text = data.decode("utf-8", errors="replace")
    if len(text) > READ_LIMIT:
        return text[:READ_LIMIT] + f"\n[... truncated: {len(text) - READ_LIMIT} more characters]"
    return text


@tool
async def read_file(
    ctx: Context, path: Annotated[str, Field(description="File path, relative to the workspace")]
) -> ToolResult:
    """Read a text file from the workspace."""
    return ToolResult(_text(ctx.sandbox.read_file(path), path))


@tool
async def list_dir(
    ctx: Context,
    path: Annotated[str, Field(description="Directory, relative to the workspace")] = ".",
) -> ToolResult:
    """List a workspace directory: directories end with '/', files show their size."""
    lines = []
    for name, kind, size in ctx.sandbox.list_dir(path):
        if kind == "dir":
            lines.append(f"{name}/")
        elif kind == "link":
            lines.append(f"{name} -> (link)")
        else:
            lines.append(f"{name}  ({size} bytes)")
    return ToolResult("\n".join(lines) if lines else "(empty directory)")


@tool
async def search(
    ctx: Context,
    pattern: Annotated[str, Field(description="Text to look for (a regular expression if regex)")],
    path: Annotated[str, Field(description="Directory or file to search")] = ".",
    glob: Annotated[
        str | None, Field(description="Only files whose name matches, e.g. *.py")
    ] = None,
    regex: bool = False,
    max_results: Annotated[int, Field(ge=1, le=1000)] = 100,
) -> ToolResult:
    """Search file contents in the workspace; returns path:line: text for each match."""
    try:
        rx = re.compile(pattern if regex else re.escape(pattern))
    except re.error as exc:
        raise ToolArgumentError(f"search: invalid regular expression: {exc}") from None
    hits: list[str] = []
    # Walked by descriptor: no symlink is followed, not even one swapped in meanwhile.
    wanted = (lambda name: fnmatch.fnmatch(name, glob)) if glob else (lambda name: True)
    for rel, data in ctx.ws.files(path, wanted):
        if b"\x00" in data[:8192]:
            continue
        for n, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            if rx.search(line):
                hits.append(f"{rel}:{n}: {line[:300]}")
                if len(hits) >= max_results:
                    hits.append(f"[stopped at {max_results} matches]")
                    return ToolResult("\n".join(hits))
    return ToolResult("\n".join(hits) if hits else "no matches")


@tool
async def write_file(
    ctx: Context,
    path: Annotated[str, Field(description="File path, relative to the workspace")],
    content: Annotated[str, Field(description="The whole new content of the file")],
) -> ToolResult:
    """Create or overwrite a file in the workspace with the given content."""
    existed = ctx.ws.exists(path)
    data = content.encode("utf-8")
    ctx.sandbox.write_file(path, data)
    rel = str(ctx.ws.relative(path))
    changes = snapshot.Changes(modified=[rel]) if existed else snapshot.Changes(created=[rel])
    return ToolResult(f"wrote {len(data)} bytes to {rel}", data={"changes": changes.to_dict()})


@tool
async def delete_file(
    ctx: Context, path: Annotated[str, Field(description="File path, relative to the workspace")]
) -> ToolResult:
    """Delete one file from the workspace."""
    ctx.sandbox.delete_file(path)
    rel = str(ctx.ws.relative(path))
    return ToolResult(f"deleted {rel}", data={"changes": snapshot.Changes(deleted=[rel]).to_dict()})


@tool
async def shell(
    ctx: Context,
    command: Annotated[str, Field(description="A bash command, run in the workspace")],
    timeout_s: Annotated[float | None, Field(gt=0, le=3600)] = None,
) -> ToolResult:
    """Run a bash command inside the sandbox (workspace at /workspace, no network)."""
    # Called directly only for commands classified GREEN: the workspace is
    # mounted read-only and the network cut, whatever the sandbox's mode, so
    # a misclassified command is still worth no more than a read.
    result = await ctx.sandbox.exec(
        ["/bin/bash", "-c", command], timeout_s=timeout_s, read_only=True, offline=True
    )
    return _shell_result(result, snapshot.Changes())


def _sha256(data: bytes | None) -> str | None:
    return hashlib.sha256(data).hexdigest() if data is not None else None


def _shell_result(result: ExecResult, changes: snapshot.Changes) -> ToolResult:
    parts = [f"exit code: {result.exit_code}" + (" (timed out)" if result.timed_out else "")]
    if result.stdout:
        parts.append(f"stdout:\n{result.stdout}")
    if result.stderr:
        parts.append(f"stderr:\n{result.stderr}")
    return ToolResult(
        "\n".join(parts),
        is_error=result.exit_code != 0,
        data={
            "exit_code": result.exit_code,
            "timed_out": result.timed_out,
            "duration_s": round(result.duration_s, 4),
            "changes": changes.to_dict(),
        },
    )


TOOLS: dict[str, Tool] = {
    t.name: t for t in (read_file, list_dir, search, write_file, delete_file, shell)
}


class BuiltinTools:
    """The built-in tools as a ``ToolSource`` over one sandbox."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.ctx = Context(sandbox)

    def specs(self) -> Sequence[ToolSpec]:
        return [t.spec for t in TOOLS.values()]

    def assess(self, call: ToolCall) -> Assessment:
        t = TOOLS.get(call.name)
        if t is None:
            return Assessment.of(Risk.RED, "unknown-tool", f"{call.name} is not a known tool")
        return classify_action(call.name, t.parse(call.arguments).model_dump(), ws=self.ctx.ws)

    async def prepare(self, call: ToolCall, *, live: bool = False) -> Prepared:
        """What the call would do: a preview for shell, the diff for file tools.
        ``live``: a shell preview with the sandbox's network (its requests are
        made for real; its file changes stay in the layer, for a second card)."""
        t = self._tool(call)
        args = t.parse(call.arguments).model_dump()
        if call.name == "write_file":
            path, content = args["path"], args["content"]
            rel = str(self.ctx.ws.relative(path))
            current = self._current(path)
            old = current.decode("utf-8", errors="replace") if current is not None else None
            base = {"path": rel, "sha256": _sha256(current)}
            if old is None:
                created: dict[str, Any] = {
                    "created": [rel],
                    "diff": unified_diff("", content, rel),
                    "base": base,
                }
                return Prepared(call, "create", effects=created)
            effects: dict[str, Any] = {
                "modified": [
                    {"path": rel, "diff": unified_diff(old, content, rel) or "(content unchanged)"}
                ],
                "base": base,
            }
            return Prepared(call, "edit", effects=effects)
        if call.name == "delete_file":
            rel = str(self.ctx.ws.relative(args["path"]))
            base = {"path": rel, "sha256": _sha256(self._current(args["path"]))}
            return Prepared(call, "delete", effects={"deleted": [rel], "base": base})
        if call.name != "shell":
            return Prepared(call, "read")
        argv = ["/bin/bash", "-c", args["command"]]
        preview = await self.ctx.sandbox.preview(argv, timeout_s=args.get("timeout_s"), live=live)
        effects = effects_excerpt(preview.to_dict())
        observed = classify_effects(preview.effects, timed_out=preview.result.timed_out)
        if live:
            effects["live"] = True
        elif preview.effects.network and NetworkMode.parse(self.ctx.sandbox.network).kind != "none":
            # The preview had no network, so it could not do its work: approved,
            # it runs again for real, and may do other things than shown.
            effects["rerun"] = True
            observed = strictest([observed, Assessment.of(Risk.RED, "rerun", RERUN)])
        return Prepared(
            call,
            "command",
            effects=effects,
            effect_assessment=observed,
            preview=preview.handle,
            result=preview.result,
        )

    async def apply(self, prepared: Prepared) -> ToolResult:
        """Carry out an approved call: commit a shell command's preview (it is
        not run again), or do the file operation the card showed."""
        call = prepared.call
        if call.name != "shell":
            base = (prepared.effects or {}).get("base")
            if base is not None and _sha256(self._current(base["path"])) != base["sha256"]:
                # The card was made on another version of the file (the person,
                # or another run, changed it meanwhile): overwriting it would lose that.
                raise ToolError(str(CommitConflict([base["path"]])))
            t = self._tool(call)
            return await t.fn(self.ctx, **t.parse(call.arguments).model_dump())
        sandbox = self.ctx.sandbox
        assert prepared.preview is not None and prepared.result is not None
        effects = prepared.effects or {}
        if effects.get("rerun"):
            # Its preview had no network, so it is not what would be committed:
            # the gate prepares it again, live, and shows that second card.
            raise ToolError("a preview made without the network it needs is never committed")
        try:
            sandbox.commit(prepared.preview)
        except CommitConflict as exc:
            raise ToolError(str(exc)) from exc
        changes = snapshot.Changes(
            created=[*effects["created"], *(s["path"] for s in effects["symlinks"])],
            modified=[m["path"] for m in effects["modified"]],
            deleted=effects["deleted"],
        )
        return _shell_result(prepared.result, changes)

    def discard(self, prepared: Prepared) -> None:
        if prepared.preview is not None:
            self.ctx.sandbox.discard(prepared.preview)

    async def update(self) -> bool:
        """A fixed set of tools: never changes."""
        return False

    def _current(self, path: str) -> bytes | None:
        """A workspace file's content as it is now; None when there is none."""
        try:
            return self.ctx.sandbox.read_file(path)
        except ToolError:
            return None

    def _tool(self, call: ToolCall) -> Tool:
        t = TOOLS.get(call.name)
        if t is None:
            raise ToolError(f"unknown tool {call.name!r}; known tools: {', '.join(TOOLS)}")
        return t

    async def call(self, call: ToolCall) -> ToolResult:
        t = self._tool(call)
        return await t.fn(self.ctx, **t.parse(call.arguments).model_dump())
