"""The policy file: which risk levels run without asking, and per-tool overrides.

Example (TOML)::

    # Levels that run without asking. GREEN only by default.
    auto_approve = ["green", "yellow"]
    # Levels that are refused without asking.
    deny = ["red"]
    # After a denial: "continue" (the agent is told and goes on) or "stop".
    on_denial = "continue"

    [risk]
    # Override the level of a whole tool (never below what its arguments say
    # for paths outside the workspace).
    shell = "yellow"

    # Grants answer matching approvals in advance, until they expire.
    [[grants]]
    tool = "shell"
    pattern = "pytest*"
    max_risk = "orange"
    hours = 8

    # Who may approve what (see permissions.py), and rate limits (ratelimit.py).
    [roles.reviewer]
    max_risk = "orange"
    [principals.alice]
    role = "reviewer"
    [[limits]]
    scope = "tool"
    name = "shell"
    capacity = 30
    refill_per_s = 0.5
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from luminaguard.config import describe_validation_error
from luminaguard.core.grant import Grant
from luminaguard.core.risk import Assessment, Risk
from luminaguard.errors import ConfigError
from luminaguard.messages import ToolCall
from luminaguard.policy.permissions import Principal, Role
from luminaguard.policy.ratelimit import Limit


class GrantSpec(BaseModel):
    """A standing grant in the policy file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tool: str
    """The tool it covers, or "*"."""
    max_risk: Risk
    """The highest level it covers."""
    hours: float = Field(8.0, gt=0)
    """How long after the policy is loaded the grant holds."""
    pattern: str | None = None
    """fnmatch pattern on the command or path."""
    workspace: str | None = None
    """Only in this workspace (absolute path)."""
    hosts: tuple[str, ...] = ()
    """Network hosts the granted action may reach."""

    @field_validator("max_risk", mode="before")
    @classmethod
    def _level(cls, value: object) -> object:
        return Risk.parse(value) if isinstance(value, str) else value

    def to_grant(self, now: float, source: str) -> Grant:
        return Grant(
            tool=self.tool,
            max_risk=self.max_risk,
            until=now + self.hours * 3600,
            pattern=self.pattern,
            workspace=self.workspace,
            hosts=self.hosts,
            created_by=f"policy ({source})",
            reason="standing grant in the policy file",
            id=f"policy-{self.tool}-{self.pattern or '*'}",
        )


class Policy(BaseModel):
    """Which actions may run without a person's decision."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    auto_approve: frozenset[Risk] = frozenset({Risk.GREEN})
    """Risk levels that run without asking. Safe default: GREEN only."""

    deny: frozenset[Risk] = frozenset()
    """Risk levels that are refused without asking."""

    on_denial: Literal["continue", "stop"] = "continue"
    """After a denial, tell the agent and go on, or end the run."""

    risk: dict[str, Risk] = {}
    """Per-tool level overrides, e.g. ``shell = "yellow"``."""

    grants: tuple[GrantSpec, ...] = ()
    """Standing grants: tool, pattern, max_risk, hours (and optionally workspace, hosts)."""

    red_grants_outlive_run: bool = False
    """Whether a RED grant made during a run may outlive that run."""

    orange_grants_outlive_run: bool = False
    """Whether an ORANGE grant made during a run may outlive that run."""

    open_world_read: Risk = Risk.RED
    """Level of reads that leave the machine (read-only, open-world MCP tools)."""

    principals: dict[str, Principal] = {}
    """People who may approve, each with a role. Empty: the local user may approve anything."""

    roles: dict[str, Role] = {}
    """Roles: up to which level, and which tools, a principal may approve."""

    limits: tuple[Limit, ...] = ()
    """Rate limits and quotas (token buckets)."""

    approval_timeout_s: float = Field(3600.0, gt=0)
    """How long a run waits for a decision in the approval inbox before it counts as a denial."""

    source: str = "built-in default policy"
    """Where this policy came from (set by the loader; shown with every decision)."""

    @field_validator("auto_approve", "deny", mode="before")
    @classmethod
    def _levels(cls, value: object) -> object:
        if isinstance(value, str):  # auto_approve = "green": one level
            value = [value]
        if isinstance(value, list | tuple | set | frozenset):
            return frozenset(Risk.parse(v) if isinstance(v, str) else v for v in value)
        return value

    @field_validator("open_world_read", mode="before")
    @classmethod
    def _level(cls, value: object) -> object:
        return Risk.parse(value) if isinstance(value, str) else value

    def standing_grants(self, now: float) -> tuple[Grant, ...]:
        return tuple(g.to_grant(now, self.source) for g in self.grants)

    @field_validator("risk", mode="before")
    @classmethod
    def _risk_table(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: Risk.parse(v) if isinstance(v, str) else v for k, v in value.items()}
        return value


def effective_assessment(policy: Policy, call: ToolCall, assessment: Assessment) -> Assessment:
    """Apply the policy's per-tool override; a RED from the arguments always stays RED."""
    override = policy.risk.get(call.name)
    if override is None or assessment.risk == Risk.RED:
        return assessment
    return Assessment.of(
        override, "policy-override", f"{policy.source} sets {call.name} to {override.label}"
    )


def load_policy(path: Path | None) -> Policy:
    """Read a policy file; ``None`` gives the safe built-in default."""
    if path is None:
        return Policy()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"policy file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"policy file {path} cannot be read: {exc}") from exc
    return parse_policy(text, str(path))


def parse_policy(text: str, source: str) -> Policy:
    """A policy from its TOML text (read from ``source``: a fleet run carries
    its policy's text, so that every worker decides by the same one)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"policy file {source} is not valid TOML: {exc}") from exc
    data.pop("source", None)
    try:
        return Policy.model_validate({**data, "source": source})
    except ConfigError as exc:
        raise ConfigError(f"policy file {source}: {exc}") from exc
    except ValidationError as exc:
        raise ConfigError(f"policy file {source}: {describe_validation_error(exc)}") from exc
