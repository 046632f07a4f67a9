"""The swappable parts of LuminaGuard, on one screen.

Each has one obvious default:

- ``Provider``   — ``luminaguard.llm.scripted.ScriptedProvider`` offline;
                   real endpoints come through ``luminaguard.llm.registry``.
- ``ToolSource`` — ``luminaguard.tools.builtin.BuiltinTools``.
- ``Sandbox``    — ``luminaguard.sandbox.bwrap.BwrapSandbox`` (by name through
                   ``luminaguard.sandbox.open_sandbox``); the in-memory reference
                   backend ``luminaguard.sandbox.memory.MemorySandbox`` for tests.
- ``Approver``   — ``luminaguard.policy.approver.TerminalApprover`` (or the
                   inbox, or ``Unattended``), asked by the gate when the policy
                   and the grants leave a decision open.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from luminaguard.core.decision import ApprovalRequest, Decision
from luminaguard.core.effects import Effects
from luminaguard.core.risk import Assessment
from luminaguard.messages import AssistantTurn, Message, ToolCall, ToolResult, ToolSpec

__all__ = [
    "ApprovalRequest",
    "Approver",
    "Decision",
    "ExecResult",
    "NetworkNotice",
    "Prepared",
    "Preview",
    "ProcessLaunch",
    "ProcessSpec",
    "Provider",
    "Sandbox",
    "ToolSource",
]


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

    async def prepare(self, call: ToolCall, *, live: bool = False) -> Prepared:
        """Find out what ``call`` would do without doing it (a preview, a diff, the
        exact request). ``live``: for a call whose card said it must run again
        for real (``effects["rerun"]``), run it with the network this time, its
        file changes still kept in a layer for a second card."""
        ...

    async def call(self, call: ToolCall) -> ToolResult:
        """Run ``call`` directly (GREEN actions). Raises ``ToolError`` for failures the model should see."""
        ...

    async def apply(self, prepared: Prepared) -> ToolResult:
        """Carry out an approved ``prepared`` call from its data: commit the
        preview it names, or perform the exact request it holds."""
        ...

    def discard(self, prepared: Prepared) -> None:
        """Drop what ``prepared`` holds (its preview); a no-op for a request."""
        ...

    async def update(self) -> bool:
        """Re-list tools whose list can change (an MCP server said so); whether it did."""
        ...


@dataclass(frozen=True)
class Prepared:
    """A call made ready for a decision, as data: what it would do, and what
    carries it out. Nothing here is a closure or a host-local object, so a
    decision made elsewhere (another process, a fleet workflow) can be carried
    out by whichever worker holds the preview, with ``ToolSource.apply``."""

    call: ToolCall
    kind: str
    """`command`, `create`, `edit`, `delete`, `request` or `read`."""
    effects: dict[str, Any] | None = None
    """What it would change, as shown on the card."""
    request: dict[str, Any] | None = None
    """For an action that cannot be previewed: the exact request."""
    effect_assessment: Assessment | None = None
    """The level of what a preview observed (None: not previewed)."""
    preview: str | None = None
    """The handle of the sandbox preview holding the changes (commit or discard it)."""
    result: ExecResult | None = None
    """What the previewed command returned, for the observation after the commit."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "call": self.call.to_dict(),
            "kind": self.kind,
            "effects": self.effects,
            "request": self.request,
            "effect_assessment": self.effect_assessment.to_dict()
            if self.effect_assessment
            else None,
            "preview": self.preview,
            "result": asdict(self.result) if self.result else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Prepared:
        call = d["call"]
        assessed = d.get("effect_assessment")
        return cls(
            ToolCall(call["id"], call["name"], call["arguments"]),
            d["kind"],
            d.get("effects"),
            d.get("request"),
            Assessment.from_dict(assessed) if assessed else None,
            d.get("preview"),
            ExecResult(**d["result"]) if d.get("result") else None,
        )


@dataclass(frozen=True)
class ExecResult:
    """The outcome of one command in a sandbox."""

    exit_code: int
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool = False
    truncated: bool = False


@dataclass
class Preview:
    """A command run on a throw-away copy-on-write layer of the workspace:
    what it returned, what it did, and the handle to commit or discard exactly
    that with the sandbox that made it."""

    handle: str
    argv: list[str]
    result: ExecResult
    effects: Effects

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": self.argv,
            **self.effects.to_dict(),
            "exit_code": self.result.exit_code,
            "timed_out": self.result.timed_out,
            "stdout": self.result.stdout,
            "stderr": self.result.stderr,
        }


@dataclass(frozen=True)
class ProcessSpec:
    """A long-lived process to start in a sandbox (an MCP server)."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    """Variables on top of the sandbox's clean environment."""
    ro_paths: tuple[str, ...] = ()
    """Host paths the program needs (its interpreter, packages), visible read-only at the same path."""
    network: str = "none"
    """`none`, `allow:HOST[,HOST...]` or `host`."""
    writable: bool = False
    """Whether it may write the workspace (read-only by default)."""


NetworkNotice = Callable[[dict[str, object]], None]
"""Told of each network request a sandboxed process makes, as it is decided."""


@dataclass(frozen=True)
class ProcessLaunch:
    """How to start a sandboxed process: the host command line (the sandbox
    included) and its environment, for a spawner that execs it itself (the
    MCP SDK's stdio client)."""

    command: list[str]
    env: dict[str, str]
    sandboxed: bool = True


class Sandbox(Protocol):
    """An isolated place to act on one workspace.

    Commands run inside; file operations act on the workspace without ever
    following a path out of it. A backend implements this and passes the
    contract suite (tests/sandbox/contract.py); it never has to be read
    beside another backend's code.
    """

    workspace: Path
    network: str
    """The network mode commands get: `none`, `allow:HOST,...`, `test[:HOST,...]` or `host`."""

    async def exec(
        self,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        timeout_s: float | None = None,
        read_only: bool = False,
        offline: bool = False,
    ) -> ExecResult:
        """Run ``argv`` inside the sandbox with the workspace as working directory;
        ``read_only``: the workspace mounted read-only; ``offline``: no network,
        whatever the sandbox's network mode."""
        ...

    async def preview(
        self,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        timeout_s: float | None = None,
        live: bool = False,
    ) -> Preview:
        """Run ``argv`` on a throw-away copy-on-write layer, network cut (``live``:
        with the sandbox's own network, so its requests are made for real); the
        workspace is unchanged."""
        ...

    def commit(self, handle: str) -> None:
        """Apply exactly the changes of preview ``handle``, or none (``CommitConflict``
        when the workspace changed meanwhile). A preview is committed at most once."""
        ...

    def discard(self, handle: str) -> None:
        """Drop preview ``handle`` (a no-op when it is already gone)."""
        ...

    def network_records(self) -> list[dict[str, object]]:
        """The network requests the last ``exec`` made, allowed or refused."""
        ...

    def process(
        self, spec: ProcessSpec, *, on_network: NetworkNotice | None = None
    ) -> AbstractAsyncContextManager[ProcessLaunch]:
        """A long-lived process in this sandbox: entered, it gives the command
        line to start; whatever the process needs while it lives (an egress
        proxy, telling ``on_network`` of each request) runs until the context
        is left, and everything is cleaned up then."""
        ...

    def read_file(self, path: str) -> bytes: ...

    def write_file(self, path: str, data: bytes) -> None: ...

    def delete_file(self, path: str) -> None: ...

    def list_dir(self, path: str) -> list[tuple[str, str, int]]:
        """Entries of a workspace directory as ``(name, kind, size)``; kind is file/dir/link."""
        ...

    def close(self) -> None: ...


class Approver(Protocol):
    """Decides whether a tool call that is not automatically allowed may run,
    and answers an MCP server's questions (elicitations) put to the run."""

    async def decide(self, request: ApprovalRequest) -> Decision: ...

    async def elicit(
        self,
        server: str,
        message: str,
        schema: dict[str, Any] | None,
        *,
        context: dict[str, Any] | None = None,
    ) -> tuple[str, dict[str, Any] | None]:
        """`(action, content)`: `accept` with the answers, `decline` or `cancel`."""
        ...
