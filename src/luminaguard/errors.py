"""The one exception tree of LuminaGuard.

    LuminaGuardError              anything we raise on purpose
    ├── UserError                 a mistake the user can fix; the CLI prints one sentence
    │   ├── ConfigError           bad luminaguard.toml, environment override or policy file
    │   ├── PlaybookError         a scripted playbook that cannot be read or replayed
    │   └── UsageError            bad command-line arguments or model spec
    ├── SandboxError              a sandbox could not be started or used
    │   └── SandboxUnavailable    no working backend on this machine (see `doctor`)
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
    │   └── AllAttemptsFailed     the router ran out of deployments and fallbacks
    └── AuditError                a journal or the run index cannot be read or written

Third-party errors are translated where they are caught, with
``raise Ours(...) from exc``, so callers only ever handle this tree.
Run outcomes (finished, limits exceeded, denied) are not errors; they live in
``luminaguard.agent.outcomes``.
"""

from __future__ import annotations


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


class SandboxError(LuminaGuardError):
    """A sandbox could not be started, or failed while running a command."""


class SandboxUnavailable(SandboxError, UserError):
    """No working sandbox backend here; `luminaguard doctor` says why."""


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


class AllAttemptsFailed(ProviderError):
    """Every deployment and fallback the router could try failed."""


class AuditError(LuminaGuardError):
    """A run journal or the run index cannot be read or written."""
