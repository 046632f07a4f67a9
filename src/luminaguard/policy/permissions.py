"""Who may approve what: principals with roles.

In the policy file::

    [roles.reviewer]
    max_risk = "orange"            # up to which level this role may approve
    tools = ["shell", "write_file"]  # which tools ("*" for all)

    [principals.alice]
    role = "reviewer"

With no principals configured, the person running LuminaGuard is the owner
and may approve anything. Once principals exist, only they may approve, each
within their role.
"""

from __future__ import annotations

import getpass

from pydantic import BaseModel, ConfigDict, field_validator

from luminaguard.core.risk import Risk


class Role(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    max_risk: Risk = Risk.RED
    """The highest level this role may approve."""
    tools: tuple[str, ...] = ("*",)
    """Tools this role may approve ("*" for all, "mcp:*" for every MCP tool)."""

    @field_validator("max_risk", mode="before")
    @classmethod
    def _level(cls, value: object) -> object:
        return Risk.parse(value) if isinstance(value, str) else value


class Principal(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    role: str
    """The name of a role in [roles]."""


def may_approve(
    name: str, tool: str, risk: Risk, principals: dict[str, Principal], roles: dict[str, Role]
) -> tuple[bool, str]:
    """Whether ``name`` may approve ``tool`` at ``risk``, with the reason."""
    import fnmatch

    if not principals:
        return True, f"{name} is the owner (no principals configured)"
    principal = principals.get(name)
    if principal is None:
        return False, f"{name} is not a principal in the policy"
    role = roles.get(principal.role)
    if role is None:
        return False, f"{name}'s role {principal.role!r} is not defined"
    if risk > role.max_risk:
        return (
            False,
            f"{name} ({principal.role}) may approve up to {role.max_risk.label}, this is {risk.label}",
        )
    if not any(fnmatch.fnmatchcase(tool, pattern) for pattern in role.tools):
        return False, f"{name} ({principal.role}) may not approve {tool}"
    return True, f"{name} ({principal.role}) may approve {tool} up to {role.max_risk.label}"


def local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "owner"
