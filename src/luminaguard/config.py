"""One settings object from ``luminaguard.toml`` and the environment.

The user's own config is the base: ``$LUMINAGUARD_CONFIG`` if set (it must
exist; then it is the only file), else ``$XDG_CONFIG_HOME/luminaguard/luminaguard.toml``
(``~/.config/...``). A workspace's own ``<workspace>/luminaguard.toml`` is laid
over it, key by key: in full once the person trusted that file
(``luminaguard trust DIR``, see ``trust.py``), otherwise only where it narrows
(lower limits, no network); any other key it sets is refused with one error.

Then environment overrides: ``LUMINAGUARD_<SECTION>__<KEY>=value`` sets
``[section] key`` (``LUMINAGUARD_AGENT__MAX_STEPS=10``), and
``LUMINAGUARD_<KEY>`` a top-level key (``LUMINAGUARD_MODEL=scripted/p.json``).
Values are read as TOML scalars when they parse as such, else as strings.
"""

from __future__ import annotations

import copy
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from luminaguard.errors import ConfigError
from luminaguard.paths import (
    CONFIG_NAME,
    ENV_PREFIX,
    data_dir_of,
    default_data_dir,
    read_file,
    user_config_path,
)

NOT_SETTINGS = frozenset({"CONFIG", "VM_DATA", "VM_CONSOLE", "FLEET_KEY"})
"""``LUMINAGUARD_`` variables that are not settings: the config file to read,
where micro-VM images live (one cache for many data dirs), a guest console log,
the fleet's payload key (a secret: never in a settings file)."""


class _Section(BaseModel):
    # Field docstrings are read by `luminaguard init` alone (cli.init.attribute_docs).
    model_config = ConfigDict(extra="forbid")


class AgentSettings(_Section):
    """The reasoning loop."""

    max_steps: int = Field(30, ge=1, le=10_000)
    """Model turns before the run ends with 'limits exceeded'."""

    max_tokens: int | None = Field(None, ge=1)
    """Input plus output tokens a run may use (none: no limit)."""

    max_cost_usd: float | None = Field(None, gt=0)
    """Model spend a run may reach, in US dollars, from `[llm.prices]` (none: no limit)."""

    system_prompt: str | None = None
    """Replaces the built-in system prompt when set."""


class SandboxSettings(_Section):
    """Where and how tool calls run."""

    backend: str = "bwrap"
    """Sandbox backend by short name: `bwrap` (namespaces), `gvisor` (gVisor's user-space kernel: for untrusted work) or `microvm` (a kernel of its own per command; `luminaguard vm build-image` first)."""

    timeout_s: float = Field(120.0, gt=0, le=86_400)
    """Wall-clock limit of one command; the whole process tree is killed after it."""

    memory_mb: int = Field(2048, ge=16)
    """Address-space limit of each process in the sandbox, in MiB."""

    cpu_s: int = Field(300, ge=1)
    """CPU-time limit of each process in the sandbox, in seconds."""

    pids_max: int = Field(256, ge=8)
    """Processes and threads the whole sandbox may have at once (needs cgroups; see `doctor`)."""

    network: str = "none"
    """Network mode: `none`, `allow:HOST[,HOST...]`, `test[:HOST,...]` or `host` (no isolation).
    HOST is `NAME`, `*.NAME`, an address, each with `:PORT` or `:*` (bare: ports 80 and 443)."""

    pool_size: int = Field(2, ge=0, le=64)
    """Sandboxes kept started ahead of need (0: start each one on demand)."""

    max_file_mb: int = Field(512, ge=1)
    """Largest file a sandboxed process may write, in MiB."""

    max_open_files: int = Field(1024, ge=16)
    """Open file descriptors per sandboxed process."""

    output_limit_kb: int = Field(256, ge=1)
    """Bytes of stdout and of stderr kept per command, in KiB; the rest is dropped and noted."""

    preview_disk_mb: int = Field(256, ge=1)
    """Total size of what one preview may write (MiB), checked while it runs: a
    preview past it is stopped and its card is RED, so a denied action cannot
    fill the host's disk."""


class Price(_Section):
    """What a model costs, in US dollars per million tokens."""

    input_per_mtok: float = Field(0.0, ge=0)
    """Price of a million input tokens."""
    output_per_mtok: float = Field(0.0, ge=0)
    """Price of a million output tokens."""


class LlmSettings(_Section):
    """Model providers."""

    timeout_s: float = Field(120.0, gt=0)
    """Time a provider has to answer one request."""
    max_tokens: int = Field(4096, ge=1)
    """Output token limit sent to providers that need one (Anthropic)."""
    prices: dict[str, Price] = Field(default_factory=dict)
    """Prices by model spec, e.g. `[llm.prices."openai/gpt-4o"]`."""


class RouterGroup(_Section):
    """A group of interchangeable deployments."""

    models: list[str] = Field(min_length=1)
    """Model specs (`PROVIDER/MODEL`), tried in turn."""
    fallbacks: list[str] = Field(default_factory=list)
    """Groups tried, in order, when every attempt in this one failed."""
    context_fallback: str | None = None
    """A group with a larger context, tried when the conversation does not fit."""


class RouterSettings(_Section):
    """Routing of model requests by task type, with retries, fallbacks and cool-downs."""

    groups: dict[str, RouterGroup] = Field(default_factory=dict)
    """Groups of deployments by name."""
    routes: dict[str, str] = Field(default_factory=dict)
    """Task type (`plan`, `act`, `summarise`, ...) → group."""
    default_group: str | None = None
    """Group for task types without a route (default: the first group)."""
    retries: int = Field(2, ge=0, le=20)
    """Further attempts inside a group after the first fails."""
    backoff_s: float = Field(0.5, ge=0)
    """First back-off between attempts; doubles each time (a server's Retry-After wins)."""
    max_backoff_s: float = Field(30.0, ge=0)
    """Longest back-off, Retry-After included."""
    allowed_fails: int = Field(3, ge=1)
    """Failures within `cooldown_s` after which a deployment cools down."""
    cooldown_s: float = Field(60.0, ge=0)
    """How long a failing deployment is left out."""


class McpOAuth(_Section):
    """OAuth 2.1 for an HTTP server (used when the server answers 401 or 403 `insufficient_scope`).

    Without `client_id` the client registers itself (a client ID metadata
    document when `client_metadata_url` is set and the server supports it,
    dynamic registration otherwise). Tokens are kept in the data directory,
    never in the workspace or a sandbox.
    """

    enabled: bool = True
    """Authorize when the server asks for it; false sends only the configured `headers`."""
    grant: Literal["authorization_code", "client_credentials"] = "authorization_code"
    """`authorization_code`: a person authorizes in a browser. `client_credentials`: machine to machine, no person (needs `client_id` and a secret or `private_key_file`)."""
    client_id: str | None = None
    """A client ID registered with the authorization server beforehand."""
    client_secret_env: str | None = None
    """Environment variable holding that client's secret (never written anywhere)."""
    token_endpoint_auth_method: (
        Literal["none", "client_secret_basic", "client_secret_post"] | None
    ) = None
    """How a pre-registered client authenticates at the token endpoint (default: `client_secret_basic` with a secret, `none` without)."""
    client_metadata_url: str | None = None
    """HTTPS URL of this client's metadata document, used as its client ID where the server supports that."""
    scopes: list[str] = Field(default_factory=list)
    """Scopes to ask for; empty: what the server's challenge or metadata names."""
    private_key_file: Path | None = None
    """PEM private key for `client_credentials` with `private_key_jwt` client authentication."""
    signing_algorithm: str = "ES256"
    """JWT algorithm for that key (ES256, RS256, ...)."""
    issuer: str | None = None
    """The authorization server these client credentials belong to: they are sent nowhere else."""
    redirect_port: int = Field(33418, ge=1, le=65535)
    """Port of the one-shot listener on 127.0.0.1 the browser is sent back to."""


class McpServer(_Section):
    """One MCP server: `command`/`args` for stdio, or `url` for Streamable HTTP."""

    command: str | None = None
    """Program that starts a stdio server."""
    args: list[str] = Field(default_factory=list)
    """Its arguments."""
    env: dict[str, str] = Field(default_factory=dict)
    """Extra environment for the server."""
    cwd: str | None = None
    """Working directory of a stdio server."""
    url: str | None = None
    """Endpoint of a Streamable HTTP server."""
    headers: dict[str, str] = Field(default_factory=dict)
    """HTTP headers sent to an HTTP server."""
    transport: Literal["auto", "streamable-http", "sse"] = "auto"
    """HTTP transport: `auto` tries Streamable HTTP and falls back to the legacy HTTP+SSE one when the server refuses it."""
    trusted: bool = False
    """Whether its tool annotations (read-only, destructive, open-world) feed the risk classifier."""
    timeout_s: float = Field(60.0, gt=0)
    """Per-call timeout, reset by progress notifications."""
    sandbox: bool = True
    """Run a stdio server inside the sandbox (default) or, when false, on the host."""
    backend: str | None = None
    """Sandbox backend of a sandboxed stdio server, e.g. `gvisor` for one you trust less (default: the run's, `sandbox.backend`)."""
    network: str = "none"
    """Network mode of a sandboxed stdio server."""
    workspace: Literal["read", "write"] = "read"
    """What a sandboxed stdio server may do to the workspace: `read` (default; it
    never writes behind the Approval Cliff's back, nor races a commit) or
    `write` (the user's explicit choice: doctor and the run say so, loudly)."""
    oauth: McpOAuth = Field(default_factory=McpOAuth)
    """Authorization for an HTTP server."""
    sampling: bool = False
    """Let the server ask the run's model for completions (`sampling:NAME`, each one through the Approval Cliff)."""


class OpenApiSource(_Section):
    """An HTTP API described by an OpenAPI spec: each operation becomes a tool."""

    spec: str
    """Path or URL of the OpenAPI document (JSON or YAML)."""
    base_url: str | None = None
    """Where to send requests (default: the spec's first server)."""
    auth_header: str = "Authorization"
    """Header that carries the credential."""
    auth_env: str | None = None
    """Environment variable holding the credential (never written to the journal)."""
    auth_prefix: str = "Bearer "
    """Put before the credential, e.g. `Bearer `."""
    allow_hosts: list[str] = Field(default_factory=list)
    """Hosts the tools may reach (default: the base URL's host only)."""
    timeout_s: float = Field(30.0, gt=0)
    """Time one request may take."""


class McpSettings(_Section):
    """MCP servers by name."""

    servers: dict[str, McpServer] = Field(default_factory=dict)
    """`[mcp.servers.NAME]` tables."""
    cache_dir: Path | None = None
    """Where `npx` packages are installed before a sandboxed server starts (default: `<data_dir>/mcp-cache`)."""


class FleetSettings(_Section):
    """Where the fleet's Temporal service is (`luminaguard fleet`)."""

    address: str = "127.0.0.1:7233"
    """HOST:PORT of the Temporal frontend (`fleet dev` serves 7233)."""
    profile: str | None = None
    """A `temporalio.envconfig` profile (TLS, API key, namespace, address) to connect with instead."""
    namespace: str = "default"
    task_queue: str = "luminaguard"
    inbox: bool = False
    """`luminaguard serve` shows the cards fleet runs wait on in its inbox, and carries the decisions made there back to them."""


class Settings(_Section):
    """Everything LuminaGuard reads from configuration."""

    model: str | None = None
    """Default model spec, `PROVIDER/MODEL` (e.g. `scripted/playbook.json`)."""

    policy: Path | None = None
    """Policy file used when `--policy` is not given. Default: GREEN runs, the rest asks."""

    data_dir: Path = Field(default_factory=lambda: default_data_dir())
    """Where run journals and the run index live (outside any workspace and sandbox)."""

    agent: AgentSettings = Field(default_factory=AgentSettings)
    """The reasoning loop."""

    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    """Where and how tool calls run."""

    mcp: McpSettings = Field(default_factory=McpSettings)
    """MCP servers."""

    llm: LlmSettings = Field(default_factory=LlmSettings)
    """Model providers."""

    openapi: dict[str, OpenApiSource] = Field(default_factory=dict)
    """`[openapi.NAME]`: APIs whose operations become tools `openapi:NAME/operationId`."""

    router: RouterSettings = Field(default_factory=RouterSettings)
    """Model routing."""

    fleet: FleetSettings = Field(default_factory=FleetSettings)
    """The fleet on Temporal."""

    source: str = Field("defaults", exclude=True)
    """Where these settings came from (for messages)."""

    @field_validator("data_dir")
    @classmethod
    def _a_directory(cls, value: Path) -> Path:
        if value.exists() and not value.is_dir():
            raise ValueError(f"{value} is a file, not a directory")
        return value


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` laid on ``base``, table by table; a new object (neither is changed later)."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_settings(
    workspace: Path | None = None,
    env: Mapping[str, str] | None = None,
    *,
    trusted_as: Path | None = None,
) -> Settings:
    """Read the settings for ``workspace``; one clear ``ConfigError`` on bad input.

    The user's config is the base. With ``$LUMINAGUARD_CONFIG`` it is the only
    file. Otherwise the workspace's own ``luminaguard.toml`` is laid over it:
    in full when the person trusted that file (``luminaguard trust``;
    ``trusted_as`` names the directory trust was given for, as a swarm
    worktree is trusted as its repository), else only where it narrows
    (``trust.NARROWING``); anything more is refused, naming the key."""
    from luminaguard import trust

    env = os.environ if env is None else env
    workspace = Path.cwd() if workspace is None else workspace
    path = user_config_path(env)
    user = read_file(path) if path is not None else {}
    data, source = _merge({}, user), str(path) if path is not None else "defaults"
    local = workspace / CONFIG_NAME
    layered = (
        not env.get(ENV_PREFIX + "CONFIG")
        and local.is_file()
        and (path is None or local.resolve() != path.resolve())
    )
    trusted = False
    if layered:
        mine = read_file(local)
        trusted = trust.is_trusted(local, data_dir_of(user, env), identity=trusted_as)
        data = _merge(user, mine)
        source = f"{local}{' (trusted)' if trusted else ''} over {source}"
    overrides = _env_overrides(env)
    if overrides:
        source += " + environment"
    for dotted, value in overrides.items():
        section, _, key = dotted.rpartition(".")
        target = data.setdefault(section, {}) if section else data
        if not isinstance(target, dict):
            raise ConfigError(f"environment override {dotted} conflicts with {section} in {source}")
        target[key] = value
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe_validation_error(exc)}") from exc
    if layered and not trusted:
        defaults = Settings().model_dump(mode="json", exclude={"source"})
        wider = trust.widening(mine, user, defaults)
        if wider is not None:
            raise ConfigError(
                f"{local} sets {wider}, which a workspace's own config may do only once you "
                f"trust it (it could start programs or reach further on this machine): read "
                f"it, then run `luminaguard trust {workspace}`"
            )
    settings.source = source
    return settings


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or name[len(ENV_PREFIX) :] in NOT_SETTINGS:
            continue
        dotted = name[len(ENV_PREFIX) :].lower().replace("__", ".")
        out[dotted] = _scalar(raw)
    return out


def _scalar(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def describe_validation_error(exc: ValidationError) -> str:
    """The first problem of a pydantic error as one sentence naming the key."""
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "(top level)"
    kind: Literal["extra_forbidden"] | str = err["type"]
    if kind == "extra_forbidden":
        msg = f"unknown key {key}"
    elif kind == "value_error":  # our own validators' sentences say what was given
        msg = f"{key}: {err['msg'].removeprefix('Value error, ')}"
    else:
        msg = f"{key}: {err['msg']}"
        if "input" in err and not isinstance(err["input"], dict):
            msg += f" (got {err['input']!r})"
    more = len(exc.errors()) - 1
    if more:
        msg += f" (and {more} more problem{'s' if more > 1 else ''})"
    return msg
