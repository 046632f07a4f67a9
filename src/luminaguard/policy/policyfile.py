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
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from luminaguard.config import describe_validation_error
from luminaguard.errors import ConfigError
from luminaguard.policy.risk import Risk


class Policy(BaseModel):
    """Which actions may run without a person's decision."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    auto_approve: frozenset[Risk] = frozenset({Risk.GREEN})
    """Risk levels that run without asking. Safe default: GREEN only."""

    deny: frozenset[Risk] = frozenset()
    """Risk levels that are refused without asking."""

    on_denial: Literal["continue", "stop"] = "continue"
    """After a denial, tell the agent and go on, or end the run."""

    risk: dict[str, Risk] = {}
    """Per-tool level overrides, e.g. ``shell = "yellow"``."""

    source: str = "built-in default policy"
    """Where this policy came from (set by the loader; shown with every decision)."""

    @field_validator("auto_approve", "deny", mode="before")
    @classmethod
    def _levels(cls, value: object) -> object:
        if isinstance(value, list | tuple | set | frozenset):
            return frozenset(Risk.parse(v) if isinstance(v, str) else v for v in value)
        return value

    @field_validator("risk", mode="before")
    @classmethod
    def _risk_table(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: Risk.parse(v) if isinstance(v, str) else v for k, v in value.items()}
        return value


def load_policy(path: Path | None) -> Policy:
    """Read a policy file; ``None`` gives the safe built-in default."""
    if path is None:
        return Policy()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"policy file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"policy file {path} cannot be read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"policy file {path} is not valid TOML: {exc}") from exc
    data.pop("source", None)
    try:
        return Policy.model_validate({**data, "source": str(path)})
    except ConfigError as exc:
        raise ConfigError(f"policy file {path}: {exc}") from exc
    except ValidationError as exc:
        raise ConfigError(f"policy file {path}: {describe_validation_error(exc)}") from exc
