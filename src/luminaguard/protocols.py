"""The swappable parts of LuminaGuard, on one screen.

Each has one obvious default:

- ``Provider``   — ``luminaguard.llm.scripted.ScriptedProvider`` offline;
                   real endpoints come through ``luminaguard.llm.registry``.
- ``ToolSource`` — ``luminaguard.tools.builtin.BuiltinTools``.
- ``Sandbox``    — ``luminaguard.sandbox.bwrap.BwrapSandbox``.
- ``Approver``   — ``luminaguard.policy.approver.PolicyApprover`` in front of
                   a terminal prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from luminaguard.messages import AssistantTurn, Message, ToolCall, ToolResult, ToolSpec

if TYPE_CHECKING:
    from luminaguard.policy.risk import Assessment


class Provider(Protocol):
    """A language model that answers a conversation with text or tool calls."""

    name: str

    async def complete(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec]
    ) -> AssistantTurn:
        """Return the next assistant turn. Raises ``ProviderError`` on failure."""
        ...


class ToolSource(Protocol):
    """A set of tools the agent may call (built-ins, an MCP server, an OpenAPI spec)."""

    def specs(self) -> Sequence[ToolSpec]:
        """The tools offered to the model."""
        ...

    def assess(self, call: ToolCall) -> Assessment:
        """The static risk of ``call``, before anything runs. Pure: no I/O but reads."""
        ...

    def preview(self, call: ToolCall) -> str:
        """What ``call`` would change, as far as can be told before it runs ('' if nothing)."""
        ...

    async def call(self, call: ToolCall) -> ToolResult:
        """Run ``call``. Raises ``ToolError`` for failures the model should see."""
        ...


@dataclass(frozen=True)
class ExecResult:
    """The outcome of one command in a sandbox."""

    exit_code: int
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool = False
    truncated: bool = False


class Sandbox(Protocol):
    """An isolated place to act on one workspace.

    Commands run inside; file operations act on the workspace without ever
    following a path out of it.
    """

    workspace: Path

    async def exec(
        self, argv: Sequence[str], *, stdin: str | None = None, timeout_s: float | None = None
    ) -> ExecResult:
        """Run ``argv`` inside the sandbox with the workspace as working directory."""
        ...

    def read_file(self, path: str) -> bytes: ...

    def write_file(self, path: str, data: bytes) -> None: ...

    def delete_file(self, path: str) -> None: ...

    def list_dir(self, path: str) -> list[tuple[str, str, int]]:
        """Entries of a workspace directory as ``(name, kind, size)``; kind is file/dir/link."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ApprovalRequest:
    """Everything a person (or a policy) needs to decide on one tool call."""

    call: ToolCall
    assessment: Assessment
    preview: str = ""
    """What the call would change, as far as it is known before it runs (a diff, a command)."""
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """An approver's answer. ``stop`` ends the run after a denial."""

    approved: bool
    by: str
    reason: str = ""
    stop: bool = False


class Approver(Protocol):
    """Decides whether a tool call that is not automatically allowed may run."""

    async def decide(self, request: ApprovalRequest) -> Decision: ...
