"""The swappable parts of LuminaGuard, on one screen.

Each has one obvious default:

- ``Provider``   — ``luminaguard.llm.scripted.ScriptedProvider`` offline;
                   real endpoints come through ``luminaguard.llm.registry``.
- ``ToolSource`` — ``luminaguard.tools.builtin.BuiltinTools``.
- ``Sandbox``    — ``luminaguard.sandbox.bwrap.BwrapSandbox``.
- ``Approver``   — ``luminaguard.policy.approver.TerminalApprover`` (or the
                   inbox, or ``Unattended``), asked by the gate when the policy
                   and the grants leave a decision open.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from luminaguard.messages import AssistantTurn, Message, ToolCall, ToolResult, ToolSpec

if TYPE_CHECKING:
    from luminaguard.policy.card import DiffCard
    from luminaguard.policy.grants import Grant
    from luminaguard.policy.risk import Assessment


class Provider(Protocol):
    """A language model that answers a conversation with text or tool calls."""

    name: str

    async def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec],
        *,
        task_type: str = "act",
        on_text: Callable[[str], None] | None = None,
        max_tokens: int | None = None,
    ) -> AssistantTurn:
        """Return the next assistant turn; stream text to ``on_text`` as it comes.
        ``max_tokens`` bounds the reply (an MCP sampling request's `maxTokens`;
        None: the provider's own setting). Raises ``ProviderError`` on failure."""
        ...


class ToolSource(Protocol):
    """A set of tools the agent may call (built-ins, an MCP server, an OpenAPI spec)."""

    def specs(self) -> Sequence[ToolSpec]:
        """The tools offered to the model."""
        ...

    def assess(self, call: ToolCall) -> Assessment:
        """The static risk of ``call``, before anything runs. Pure: no I/O but reads."""
        ...

    async def prepare(self, call: ToolCall) -> Prepared:
        """Find out what ``call`` would do without doing it (a preview, a diff, the exact request)."""
        ...

    async def call(self, call: ToolCall) -> ToolResult:
        """Run ``call`` directly (GREEN actions). Raises ``ToolError`` for failures the model should see."""
        ...


@dataclass
class Prepared:
    """A call made ready for a decision: what it would do, and how to do or drop it."""

    kind: str
    """`command`, `create`, `edit`, `delete`, `request` or `read`."""
    apply: Callable[[], Awaitable[ToolResult]]
    """Carry it out: commit the preview, or perform the request."""
    discard: Callable[[], None] = lambda: None
    effects: dict[str, Any] | None = None
    request: dict[str, Any] | None = None
    effect_assessment: Assessment | None = None


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
        self,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        timeout_s: float | None = None,
        read_only: bool = False,
    ) -> ExecResult:
        """Run ``argv`` inside the sandbox with the workspace as working directory."""
        ...

    async def preview(
        self, argv: Sequence[str], *, stdin: str | None = None, timeout_s: float | None = None
    ) -> Any:
        """Run ``argv`` on a throw-away copy-on-write layer; a ``sandbox.preview.Preview``."""
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
    card: DiffCard

    @property
    def assessment(self) -> Assessment:
        return self.card.assessment


@dataclass(frozen=True)
class Decision:
    """An approver's answer. ``stop`` ends the run after a denial; ``grant``
    answers this and future matching actions in advance."""

    approved: bool
    by: str
    reason: str = ""
    stop: bool = False
    grant: Grant | None = None
    principal: str | None = None
    """The person who decided, for the permission check (None: a policy or grant)."""


class Approver(Protocol):
    """Decides whether a tool call that is not automatically allowed may run."""

    async def decide(self, request: ApprovalRequest) -> Decision: ...
