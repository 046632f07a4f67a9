"""A grant: a scoped, expiring permission that answers an approval in advance.

A grant names a tool (or `*`), optionally a pattern the command or path must
match, the highest level it covers, the workspace, the network hosts it
allows, and when it expires. Pure data; the store is ``policy/grants.py``.
"""

from __future__ import annotations

import fnmatch
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from luminaguard.core.card import DiffCard
from luminaguard.core.risk import Risk


@dataclass(frozen=True)
class Grant:
    tool: str
    max_risk: Risk
    until: float
    """Expiry, seconds since the epoch."""
    pattern: str | None = None
    """fnmatch pattern on the path (file tools), or on *each* simple command of
    a shell script: ``pytest*`` covers ``pytest -q`` but not ``pytest -q; rm -rf src``."""
    exact: str | None = None
    """The whole command or path, exactly (what a person grants at the prompt)."""
    rules: tuple[str, ...] = ()
    """The reasons it was granted for (rule ids); a card with another reason is
    not covered (a grant for a host never covers dynamic code). Empty: any."""
    workspace: str | None = None
    hosts: tuple[str, ...] = ()
    """Network hosts the granted action may reach (none when empty)."""
    run_id: str | None = None
    """Set: the grant is valid in this run only."""
    created_by: str = ""
    reason: str = ""
    id: str = field(default_factory=lambda: "g-" + secrets.token_hex(4))

    def subject(self, card: DiffCard) -> str:
        args = card.arguments if isinstance(card.arguments, dict) else {}
        return str(args.get("command") or args.get("path") or "")

    def covers(
        self,
        card: DiffCard,
        *,
        workspace: str,
        run_id: str,
        now: float | None = None,
        commands: list[str] | None = None,
    ) -> bool:
        """Whether this grant answers ``card``. For a shell pattern, ``commands``
        are the simple commands of the card's script (None: it could not be
        parsed, so no pattern covers it)."""
        now = time.time() if now is None else now
        if now >= self.until:
            return False
        if self.run_id is not None and self.run_id != run_id:
            return False
        if self.tool != "*" and self.tool != card.tool:
            return False
        if card.risk > self.max_risk:
            return False
        if self.workspace is not None and self.workspace != workspace:
            return False
        if self.exact is not None and self.subject(card) != self.exact:
            return False
        if self.pattern is not None and not self._matches(card, commands):
            return False
        if self.rules and not {r.rule for r in card.assessment.reasons} <= set(self.rules):
            return False
        if (card.effects or {}).get("rerun"):
            return False  # it will run again for real: never answered in advance
        network = (card.effects or {}).get("network") or []
        hosts = {str(a.get("host")) for a in network if a.get("host")}
        if any(a.get("suspected") for a in network):
            return False
        return hosts <= set(self.hosts)

    def _matches(self, card: DiffCard, commands: list[str] | None) -> bool:
        assert self.pattern is not None
        if card.tool != "shell":
            return fnmatch.fnmatchcase(self.subject(card), self.pattern)
        return bool(commands) and all(fnmatch.fnmatchcase(c, self.pattern) for c in commands or ())

    def scope_text(self) -> str:
        """What it covers, in words (shown before it is made)."""
        if self.exact is not None:
            what = f"exactly `{self.exact}`"
        elif self.pattern is not None:
            what = f"`{self.pattern}`"
        else:
            what = "any call"
        return f"{self.tool} {what}, up to {self.max_risk.label}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["max_risk"] = self.max_risk.label
        d["hosts"] = list(self.hosts)
        d["rules"] = list(self.rules)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Grant:
        return cls(
            **{
                **d,
                "max_risk": Risk.parse(d["max_risk"]),
                "hosts": tuple(d.get("hosts", ())),
                "rules": tuple(d.get("rules", ())),
            }
        )


GRANT_HOURS = 8.0
"""How long a grant given with an approval lasts, at the prompt, in the
Textual inbox or on the web page."""


def new_grant(
    card: DiffCard, hours: float, pattern: str | None = None, now: float | None = None
) -> Grant:
    """A grant covering ``card`` again for ``hours``: the same tool, level, hosts
    and reasons, and exactly the same command or path (or ``pattern``, which the
    person saw and confirmed)."""
    now = time.time() if now is None else now
    network = (card.effects or {}).get("network") or []
    args = card.arguments if isinstance(card.arguments, dict) else {}
    subject = str(args.get("command") or args.get("path") or "")
    return Grant(
        tool=card.tool,
        max_risk=card.risk,
        until=now + hours * 3600,
        pattern=pattern,
        exact=None if pattern is not None else subject,
        rules=tuple(sorted({r.rule for r in card.assessment.reasons})),
        hosts=tuple(sorted({str(a["host"]) for a in network if a.get("host")})),
        reason=f"granted for {hours:g} h",
    )
