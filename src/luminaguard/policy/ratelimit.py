"""Rate limits and quotas as token buckets, persisted across restarts.

In the policy file::

    [[limits]]
    scope = "tool"        # tool | provider | agent | run
    name = "shell"        # which tool or provider ("*": each one)
    capacity = 30         # tokens in a full bucket
    refill_per_s = 0.5    # tokens added per second (0: a quota that never refills)

A bucket is kept per scope key: tool and provider buckets are shared by every
run on the machine; agent buckets by every run of that agent; run buckets by
one run. Spend (e.g. model cost) can be taken in amounts other than 1.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from luminaguard.errors import QuotaExceeded
from luminaguard.store import connect


def exhausted(key: str, limit: Limit, retry_after_s: float | None) -> QuotaExceeded:
    """The error for an empty bucket, in one sentence."""
    when = (
        f"; try again in {retry_after_s:.0f} s"
        if retry_after_s is not None
        else "; it does not refill"
    )
    per = f" per {limit.capacity / limit.refill_per_s:.0f} s" if limit.refill_per_s else " (quota)"
    return QuotaExceeded(
        f"rate limit reached for {key}: {limit.capacity:g}{per}{when}", key, retry_after_s
    )


class Limit(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    scope: Literal["tool", "provider", "agent", "run"]
    """What the bucket is counted per: each tool, each provider, each agent, or each run."""
    name: str = "*"
    """The tool or provider it applies to; "*" is every one, sharing the bucket."""
    on: Literal["tools", "models"] = "tools"
    """For agent and run scopes: tool calls or model calls."""
    counts: Literal["calls", "tokens", "cost_usd"] = "calls"
    """What is spent: calls, or (model calls only) tokens or cost in US dollars."""
    capacity: float = Field(gt=0)
    """Tokens in a full bucket."""
    refill_per_s: float = Field(0.0, ge=0)
    """Tokens added back per second; 0 makes it a quota."""

    def applies(self, on: str, name: str) -> bool:
        wanted = {"tool": "tools", "provider": "models"}.get(self.scope, self.on)
        return wanted == on and self.name in ("*", name)


@dataclass
class Subject:
    """Who is spending: the run and its agent."""

    run_id: str
    agent: str


BUCKETS_SCHEMA = "CREATE TABLE IF NOT EXISTS buckets (key TEXT PRIMARY KEY, tokens REAL NOT NULL, updated REAL NOT NULL)"


class Limiter:
    def __init__(self, path: Path, limits: tuple[Limit, ...]) -> None:
        self.limits = limits
        self.db = connect(path, "rate-limit store", BUCKETS_SCHEMA)

    def take(
        self, subject: Subject, on: str, name: str, spend: dict[str, float] | None = None
    ) -> None:
        """Spend from every bucket that applies to a call ``on`` tools or models
        named ``name``, or raise ``QuotaExceeded`` and spend nothing."""
        spend = {"calls": 1.0, **(spend or {})}
        # Every applicable bucket is checked; call buckets must hold the call,
        # token and cost buckets must not be exhausted (they are charged after).
        wanted = [
            (self._key(limit, subject), limit, spend.get(limit.counts, 0.0))
            for limit in self.limits
            if limit.applies(on, name)
        ]
        if not wanted:
            return
        now = time.time()
        self.db.execute("BEGIN IMMEDIATE")
        try:
            levels = {}
            for key, limit, amount in wanted:
                tokens = self._level(key, limit, now)
                empty = tokens < amount if limit.counts == "calls" else tokens <= 0
                if empty:
                    retry = (
                        (max(amount, 1e-9) - tokens) / limit.refill_per_s
                        if limit.refill_per_s
                        else None
                    )
                    raise exhausted(f"{limit.scope} {limit.name} {limit.counts}", limit, retry)
                levels[key] = tokens - amount
            for key, tokens in levels.items():
                self.db.execute(
                    "INSERT OR REPLACE INTO buckets (key, tokens, updated) VALUES (?, ?, ?)",
                    (key, tokens, now),
                )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def charge(self, subject: Subject, on: str, name: str, spent: dict[str, float]) -> None:
        """Record spend after the fact (tokens, cost): buckets may go below zero,
        and then the next ``take`` is refused. Calls are not counted here."""
        amounts = {k: v for k, v in spent.items() if k != "calls" and v > 0}
        if not amounts:
            return
        now = time.time()
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for limit in self.limits:
                if limit.counts in amounts and limit.applies(on, name):
                    key = self._key(limit, subject)
                    self.db.execute(
                        "INSERT OR REPLACE INTO buckets (key, tokens, updated) VALUES (?, ?, ?)",
                        (key, self._level(key, limit, now) - amounts[limit.counts], now),
                    )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def _level(self, key: str, limit: Limit, now: float) -> float:
        """The bucket's tokens at ``now``: as stored, refilled since, at most full."""
        row = self.db.execute(
            "SELECT tokens, updated FROM buckets WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return limit.capacity
        return float(min(limit.capacity, row[0] + (now - row[1]) * limit.refill_per_s))

    @staticmethod
    def _key(limit: Limit, subject: Subject) -> str:
        scope_id = {"tool": "", "provider": "", "agent": subject.agent, "run": subject.run_id}[
            limit.scope
        ]
        on = limit.on if limit.scope in ("agent", "run") else ""
        return f"{limit.scope}{':' + scope_id if scope_id else ''}:{on}:{limit.name}:{limit.counts}"

    def close(self) -> None:
        self.db.close()
