"""Who may approve what: principals with roles.

In the policy file::

    [roles.reviewer]
    max_risk = "orange"            # up to which level this role may approve
    tools = ["shell", "write_file"]  # which tools ("*" for all)

    [principals.alice]
    role = "reviewer"
    users = ["alice", "1001"]        # the OS users (names or uids) who are alice

With no principals configured, the person running LuminaGuard is the owner
and may approve anything. Once principals exist, only they may approve, each
within their role.

A principal is who the operating system says is deciding: the user of the
process's real uid (never ``$USER`` or ``$LOGNAME``, which anyone can set), or
a named principal that user is bound to (``users``). ``--as NAME`` is refused
unless NAME is that user or one it is bound to.
"""

from __future__ import annotations

import os
import pwd

from pydantic import BaseModel, ConfigDict, field_validator

from luminaguard.core.risk import Risk
from luminaguard.errors import UsageError


class Role(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_risk: Risk = Risk.RED
    """The highest level this role may approve."""
    tools: tuple[str, ...] = ("*",)
    """Tools this role may approve ("*" for all, "mcp:*" for every MCP tool)."""

    @field_validator("max_risk", mode="before")
    @classmethod
    def _level(cls, value: object) -> object:
        return Risk.parse(value) if isinstance(value, str) else value


class Principal(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: str
    """The name of a role in [roles]."""
    users: tuple[str, ...] = ()
    """The OS users (names or numeric uids) who may act as this principal
    (`--as NAME`); a principal named like an OS user is that user anyway."""

    def binds(self, user: str, uid: int) -> bool:
        return user in self.users or str(uid) in self.users


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
    """The OS user of this process's real uid (its name, or the uid if it has none)."""
    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def acting_principal(requested: str | None, principals: dict[str, Principal]) -> str:
    """Who is deciding: the OS user, or ``requested`` if that user may act as it
    (it is the user, or a principal the policy binds the user to). With nothing
    requested, the one principal the user is bound to, if there is exactly one."""
    user, uid = local_user(), os.getuid()
    if requested is None or requested == user:
        if requested is None and user not in principals:
            bound = [name for name, p in principals.items() if p.binds(user, uid)]
            if len(bound) == 1:
                return bound[0]
        return user
    principal = principals.get(requested)
    if principal is not None and principal.binds(user, uid):
        return requested
    raise UsageError(
        f"--as {requested}: you are the OS user {user}, and the policy does not bind "
        f'{user} to {requested} (add users = ["{user}"] under [principals.{requested}])'
    )
