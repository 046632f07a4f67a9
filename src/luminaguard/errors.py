"""The one exception tree of LuminaGuard: every exception the package raises.

    LuminaGuardError              anything we raise on purpose
    ├── UserError                 a mistake the user can fix; the CLI prints one sentence
    │   ├── ConfigError           bad luminaguard.toml, environment override or policy file
    │   ├── PlaybookError         a scripted playbook that cannot be read or replayed
    │   └── UsageError            bad command-line arguments or model spec
    │       └── RunBusy           the run is held by another process (it runs there)
    ├── SandboxError              a sandbox could not be started or used
    │   ├── SandboxUnavailable    no working backend on this machine (see `doctor`); also a UserError
    │   ├── CommitConflict        the workspace changed since the preview; nothing was applied
    │   ├── NetworkViolation      a command tried a host its network mode refuses
    │   ├── NoIdmap               under root: the workspace's file system cannot be id-mapped
    │   ├── VmError               a micro-VM or its guest agent failed
    │   │   ├── AgentTimeout      the guest agent said nothing in the time given
    │   │   └── OverCap           a micro-VM preview wrote past its disk cap (a RED card, not a failure)
    │   ├── ImageError            the micro-VM's guest image could not be built
    │   └── CompileError          a small static helper could not be compiled (no gcc, a cache others can write)
    ├── ToolError                 a tool call failed; the agent sees it as an observation
    │   ├── ToolArgumentError     arguments missing, malformed or of the wrong type
    │   └── WorkspacePathError    a path that would leave the workspace
    ├── ProviderError             the model could not be queried or answered nonsense
    │   ├── RateLimited           429: retry later (``retry_after_s`` when the server says)
    │   ├── ProviderTimeout       no answer in time
    │   ├── ProviderUnavailable   could not connect
    │   ├── ServerError           5xx (and Anthropic's 529 overloaded)
    │   ├── BadRequest            4xx other than 429: retrying will not help
    │   │   └── ContextTooLong    the conversation does not fit the model's context
    │   ├── NotHttp               the endpoint's answer is not HTTP as we can read it
    │   └── AllAttemptsFailed     the router ran out of deployments and fallbacks
    ├── McpServerError            an MCP server could not be started, or failed
    │   └── BadMcpServer          its config is wrong: no such command, or it does not speak MCP; also a UserError
    ├── McpAuthorizationError     an MCP server needs authorization that could not be obtained
    ├── QuotaExceeded             one of the policy's rate limits or quotas is used up
    ├── DeniedAndStop             a denial after which the run must end
    ├── AwaitingDecision          a fleet step stops at a card for a person (the workflow waits)
    ├── GitError                  a git command failed
    ├── LeaseLost                 a swarm item's lease was reclaimed; its worker must stop
    └── AuditError                a journal or the run index cannot be read or written

Third-party errors are translated where they are caught, with
``raise Ours(...) from exc``, so callers only ever handle this tree.
Run outcomes (finished, limits exceeded, denied, failed) are not errors; they
live in ``luminaguard.agent.outcomes`` (``RunEnded`` and its subclasses).
A test (tests/test_layers.py) fails on any exception class of the package
that is outside this tree or missing from this drawing.
"""

from __future__ import annotations

from typing import Any


class LuminaGuardError(Exception):
    """Base of every error LuminaGuard raises on purpose."""


class UserError(LuminaGuardError):
    """A mistake the user can fix. The CLI prints it as one sentence, no traceback."""


class ConfigError(UserError):
    """A configuration, environment override or policy file is invalid."""


class PlaybookError(UserError):
    """A scripted-provider playbook cannot be read, or has run out of steps."""


class UsageError(UserError):
    """Command-line arguments or a model spec are invalid."""


class RunBusy(UsageError):
    """The run is held by another process, which is running it; it can be
    resumed once that process lets go (a fleet step tries again)."""


class SandboxError(LuminaGuardError):
    """A sandbox could not be started, or failed while running a command."""


class SandboxUnavailable(SandboxError, UserError):
    """No working sandbox backend here; `luminaguard doctor` says why."""


class CommitConflict(SandboxError):
    """The workspace changed since the preview; nothing was applied."""

    def __init__(self, paths: list[str]) -> None:
        super().__init__(
            f"the workspace changed since the preview at {', '.join(paths)}; nothing was applied"
        )
        self.paths = paths


class NetworkViolation(SandboxError):
    """A sandboxed command tried to reach a host its network mode does not allow."""

    def __init__(self, attempts: list[dict[str, object]]) -> None:
        hosts = ", ".join(sorted({f"{a['host']}:{a['port']}" for a in attempts}))
        super().__init__(f"blocked network access to {hosts}")
        self.attempts = attempts


class NoIdmap(SandboxError):
    """Under root: the workspace's file system cannot be id-mapped (the kernel
    said so), so the sandbox falls back to the mapping to host root."""


class VmError(SandboxError):
    """A micro-VM or its guest agent failed; the message says how."""


class AgentTimeout(VmError):
    """The guest agent said nothing within the time given."""


class OverCap(VmError):
    """A micro-VM preview's guest wrote more than the preview disk cap: nothing
    was brought back; ``result`` is what its command returned (an ExecResult).
    The preview becomes a RED card, not an error."""

    def __init__(self, result: object) -> None:
        super().__init__("the preview wrote more than its disk cap")
        self.result = result


class ImageError(SandboxError):
    """The micro-VM's image could not be built; the message says which step and why."""


class CompileError(SandboxError):
    """A static helper (``sandbox/native.py``) could not be compiled or cached."""


class ToolError(LuminaGuardError):
    """A tool call failed. The agent receives the message as an observation."""


class ToolArgumentError(ToolError):
    """The model sent tool arguments that are missing, malformed or mistyped."""


class WorkspacePathError(ToolError):
    """A path that resolves outside the workspace (absolute, `..`, or via a symlink)."""


class ProviderError(LuminaGuardError):
    """The model provider could not be queried, or its reply could not be used."""


class RateLimited(ProviderError):
    """The provider answered 429."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ProviderTimeout(ProviderError):
    """The provider did not answer in time."""


class ProviderUnavailable(ProviderError):
    """The provider could not be reached."""


class ServerError(ProviderError):
    """The provider failed (5xx, or overloaded)."""


class BadRequest(ProviderError):
    """The provider refused the request (4xx other than 429); retrying will not help."""


class ContextTooLong(BadRequest):
    """The conversation does not fit the model's context window."""


class NotHttp(ProviderError):
    """The endpoint's answer is not HTTP/1.x as we can read it (``llm/http.py``)."""


class AllAttemptsFailed(ProviderError):
    """Every deployment and fallback the router could try failed."""


class McpServerError(LuminaGuardError):
    """An MCP server could not be started, or failed."""

    refused = False
    """Set when an HTTP server answered `initialize` with an error (it may speak legacy SSE)."""
    why = ""
    """What went wrong, in a few words (for a message that combines several)."""


class BadMcpServer(McpServerError, UserError):
    """A server's config is wrong: its command is not there, or what it names
    does not speak MCP (a mistake the user can fix)."""


class McpAuthorizationError(LuminaGuardError):
    """An MCP server needs authorization that could not be obtained."""


class QuotaExceeded(LuminaGuardError):
    """A rate limit or quota of the policy is exhausted (``key`` names the bucket)."""

    def __init__(self, message: str, key: str, retry_after_s: float | None) -> None:
        super().__init__(message)
        self.key = key
        self.retry_after_s = retry_after_s


class AwaitingDecision(LuminaGuardError):
    """A fleet step reached a card only a person can decide (``call``, a
    ToolCall, and ``card``, its DiffCard): the step ends, its workflow waits
    for the decision."""

    def __init__(self, call: Any, card: Any) -> None:
        super().__init__(f"call {call.id} waits for a decision")
        self.call, self.card = call, card


class DeniedAndStop(LuminaGuardError):
    """A denial after which the run must end (policy `on_denial = "stop"`, or the person said so)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class GitError(LuminaGuardError):
    """A git command failed."""


class LeaseLost(LuminaGuardError):
    """The lease was reclaimed (expired or taken); this worker must stop the item."""


class AuditError(LuminaGuardError):
    """A run journal or the run index cannot be read or written."""
