"""The shared approval inbox: pending Diff Cards of every agent on this machine.

Runs started with ``--approver inbox`` (and swarm workers) put each card that
needs a person here and wait for the answer; ``luminaguard approvals`` shows
them oldest first and writes the decisions. An MCP server's elicitation in
such a run is a question here, answered with `luminaguard approvals answer`. SQLite in WAL mode is the only
channel, so any number of agents and one or more people can share it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from luminaguard.core.card import DiffCard
from luminaguard.core.grant import new_grant
from luminaguard.protocols import ApprovalRequest, Decision
from luminaguard.store import connect

POLL_S = 0.05


@dataclass(frozen=True)
class Pending:
    id: int
    run_id: str
    agent: str
    task: str
    step: int
    card: DiffCard
    created: float
    status: str
    decided_by: str | None
    reason: str | None
    grant_hours: float | None

    @property
    def approved_with_grant(self) -> bool:
        return self.status == "approved" and bool(self.grant_hours)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "run_id": self.run_id,
            "agent": self.agent,
            "task": self.task,
            "step": self.step,
            "created": self.created,
            "status": self.status,
            "decided_by": self.decided_by,
            "reason": self.reason,
            "card": self.card.to_dict(),
        }


COLUMNS = "id, run_id, agent, task, step, card, created, status, decided_by, reason, grant_hours"


INBOX_SCHEMA = """CREATE TABLE IF NOT EXISTS pending (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, agent TEXT NOT NULL,
                    task TEXT NOT NULL, step INTEGER NOT NULL, card TEXT NOT NULL, card_hash TEXT NOT NULL,
                    created REAL NOT NULL, status TEXT NOT NULL DEFAULT 'pending', decided_by TEXT,
                    reason TEXT, grant_hours REAL, decided_at REAL);
                 CREATE TABLE IF NOT EXISTS questions (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, agent TEXT NOT NULL,
                    server TEXT NOT NULL, message TEXT NOT NULL, schema TEXT NOT NULL,
                    created REAL NOT NULL, status TEXT NOT NULL DEFAULT 'pending',
                    answer TEXT, answered_by TEXT, answered_at REAL)"""


@dataclass(frozen=True)
class Question:
    """An MCP server's elicitation, waiting in the inbox for a person's answer."""

    id: int
    run_id: str
    agent: str
    server: str
    message: str
    schema: dict[str, Any]
    created: float
    status: str
    answer: dict[str, Any] | None
    answered_by: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "run_id": self.run_id,
            "agent": self.agent,
            "server": self.server,
            "message": self.message,
            "schema": self.schema,
            "created": self.created,
            "status": self.status,
            "answer": self.answer,
            "answered_by": self.answered_by,
        }


QUESTION_COLUMNS = (
    "id, run_id, agent, server, message, schema, created, status, answer, answered_by"
)


def _question(row: tuple[Any, ...]) -> Question:
    i, run_id, agent, server, message, schema, created, status, answer, by = row
    return Question(
        i,
        run_id,
        agent,
        server,
        message,
        json.loads(schema),
        created,
        status,
        json.loads(answer) if answer else None,
        by,
    )


def choices_of(prop: dict[str, Any]) -> list[Any]:
    """The allowed values of an elicitation field (`enum`, or titled `oneOf`/`anyOf` consts)."""
    if prop.get("enum"):
        return list(prop["enum"])
    titled = prop.get("oneOf") or prop.get("anyOf") or []
    return [o["const"] for o in titled if isinstance(o, dict) and "const" in o]


def _scalar(name: str, raw: str, prop: dict[str, Any]) -> Any:
    kind = prop.get("type")
    try:
        if kind == "integer":
            value: Any = int(raw)
        elif kind == "number":
            value = float(raw)
        elif kind == "boolean":
            if raw.lower() not in ("true", "false", "yes", "no", "y", "n", "1", "0"):
                raise ValueError
            value = raw.lower() in ("true", "yes", "y", "1")
        else:
            value = raw
    except ValueError:
        raise ValueError(f"field {name!r} must be {kind}, not {raw!r}") from None
    if kind in ("integer", "number"):
        low, high = prop.get("minimum"), prop.get("maximum")
        if (low is not None and value < low) or (high is not None and value > high):
            raise ValueError(f"field {name!r} must be {_bounds(low, high)}")
    choices = choices_of(prop)
    if choices and value not in choices:
        raise ValueError(f"field {name!r} must be one of {', '.join(map(str, choices))}")
    return value


def _bounds(low: Any, high: Any) -> str:
    if low is not None and high is not None:
        return f"between {low} and {high}"
    return f"at least {low}" if low is not None else f"at most {high}"


def answer_content(schema: dict[str, Any], fields: dict[str, str]) -> dict[str, Any]:
    """Typed content for an elicitation from NAME=VALUE strings (a list field
    takes comma-separated values), checked against the requested schema:
    unknown or missing required fields, types, ranges, choices. One
    ``ValueError`` naming the field."""
    props: dict[str, Any] = schema.get("properties") or {}
    unknown = sorted(set(fields) - set(props))
    if unknown:
        raise ValueError(
            f"unknown field {unknown[0]!r}; the fields are: {', '.join(props) or 'none'}"
        )
    content: dict[str, Any] = {}
    for name, prop in props.items():
        if name not in fields:
            if "default" in prop:
                content[name] = prop["default"]
            elif name in (schema.get("required") or []):
                raise ValueError(f"field {name!r} is required")
            continue
        if prop.get("type") == "array":
            items = prop.get("items") or {}
            values = [_scalar(name, v.strip(), items) for v in fields[name].split(",") if v.strip()]
            low, high = prop.get("minItems"), prop.get("maxItems")
            if (low is not None and len(values) < low) or (high is not None and len(values) > high):
                raise ValueError(f"field {name!r} takes {_bounds(low, high)} values")
            content[name] = values
        else:
            content[name] = _scalar(name, fields[name], prop)
    return content


class InboxStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = connect(path, "approval inbox", INBOX_SCHEMA, threads=True)

    def put(self, card: DiffCard) -> int:
        ctx = card.context
        cur = self.db.execute(
            "INSERT INTO pending (run_id, agent, task, step, card, card_hash, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                str(ctx.get("run_id", "")),
                str(ctx.get("agent", "")),
                str(ctx.get("task", "")),
                int(ctx.get("step", 0)),
                json.dumps(card.to_dict()),
                card.hash,
                time.time(),
            ),
        )
        return int(cur.lastrowid or 0)

    def get(self, item_id: int) -> Pending | None:
        row = self.db.execute(f"SELECT {COLUMNS} FROM pending WHERE id = ?", (item_id,)).fetchone()
        return _pending(row) if row else None

    def find(self, run_id: str, card_hash: str, call_id: str) -> Pending | None:
        """The newest item of this card of this call, decided or not."""
        rows = self.db.execute(
            f"SELECT {COLUMNS} FROM pending WHERE run_id = ? AND card_hash = ? ORDER BY id DESC",
            (run_id, card_hash),
        ).fetchall()
        items = (_pending(r) for r in rows)
        return next((i for i in items if i.card.context.get("call_id") == call_id), None)

    def pending(self) -> list[Pending]:
        rows = self.db.execute(
            f"SELECT {COLUMNS} FROM pending WHERE status = 'pending' ORDER BY created, id"
        ).fetchall()
        return [_pending(r) for r in rows]

    def decide(
        self,
        item_id: int,
        *,
        approved: bool,
        by: str,
        reason: str = "",
        grant_hours: float | None = None,
    ) -> bool:
        """Record a decision; False if the item is unknown or already decided."""
        cur = self.db.execute(
            "UPDATE pending SET status = ?, decided_by = ?, reason = ?, grant_hours = ?, decided_at = ? WHERE id = ? AND status = 'pending'",
            ("approved" if approved else "denied", by, reason, grant_hours, time.time(), item_id),
        )
        return cur.rowcount == 1

    def related(self, item_id: int) -> list[Pending]:
        """Pending cards from the same step of the same run (decided together)."""
        item = self.get(item_id)
        if item is None:
            return []
        rows = self.db.execute(
            f"SELECT {COLUMNS} FROM pending WHERE run_id = ? AND step = ? AND status = 'pending' ORDER BY id",
            (item.run_id, item.step),
        ).fetchall()
        return [_pending(r) for r in rows]

    def expire(self, item_id: int) -> None:
        self.db.execute(
            "UPDATE pending SET status = 'expired', decided_at = ? WHERE id = ? AND status = 'pending'",
            (time.time(), item_id),
        )

    def ask(
        self, context: dict[str, Any], server: str, message: str, schema: dict[str, Any]
    ) -> int:
        cur = self.db.execute(
            "INSERT INTO questions (run_id, agent, server, message, schema, created) VALUES (?, ?, ?, ?, ?, ?)",
            (
                str(context.get("run_id", "")),
                str(context.get("agent", "")),
                server,
                message,
                json.dumps(schema),
                time.time(),
            ),
        )
        return int(cur.lastrowid or 0)

    def question(self, item_id: int) -> Question | None:
        row = self.db.execute(
            f"SELECT {QUESTION_COLUMNS} FROM questions WHERE id = ?", (item_id,)
        ).fetchone()
        return _question(row) if row else None

    def waiting(self) -> tuple[int, int, int]:
        """Cards pending, the newest pending card's id, questions pending: one
        query, no card read (a page polls this to see whether it changed)."""
        row = self.db.execute(
            "SELECT (SELECT COUNT(*) FROM pending WHERE status = 'pending'),"
            " (SELECT COALESCE(MAX(id), 0) FROM pending WHERE status = 'pending'),"
            " (SELECT COUNT(*) FROM questions WHERE status = 'pending')"
        ).fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    def snapshot(self) -> tuple[tuple[int, int, int], list[Pending], list[Question]]:
        """``waiting()``, the pending cards and the questions, read in one
        transaction: what a page shows and the version it says it shows agree."""
        self.db.execute("BEGIN")
        try:
            return self.waiting(), self.pending(), self.questions()
        finally:
            self.db.execute("COMMIT")

    def questions(self) -> list[Question]:
        rows = self.db.execute(
            f"SELECT {QUESTION_COLUMNS} FROM questions WHERE status = 'pending' ORDER BY created, id"
        ).fetchall()
        return [_question(r) for r in rows]

    def answer(self, item_id: int, *, action: str, content: dict[str, Any] | None, by: str) -> bool:
        """Record an answer (`accept` with content, `decline`, `cancel`); False
        if the question is unknown or already answered."""
        cur = self.db.execute(
            "UPDATE questions SET status = ?, answer = ?, answered_by = ?, answered_at = ? WHERE id = ? AND status = 'pending'",
            (
                action,
                json.dumps(content) if content is not None else None,
                by,
                time.time(),
                item_id,
            ),
        )
        return cur.rowcount == 1

    def expire_question(self, item_id: int) -> None:
        self.db.execute(
            "UPDATE questions SET status = 'expired', answered_at = ? WHERE id = ? AND status = 'pending'",
            (time.time(), item_id),
        )

    def close(self) -> None:
        self.db.close()


def _pending(row: tuple[Any, ...]) -> Pending:
    i, run_id, agent, task, step, card, created, status, by, reason, hours = row
    return Pending(
        i,
        run_id,
        agent,
        task,
        step,
        DiffCard.from_dict(json.loads(card)),
        created,
        status,
        by,
        reason,
        hours,
    )


class InboxApprover:
    """Puts the card in the shared inbox and waits (bounded) for a person's answer."""

    def __init__(self, path: Path, *, timeout_s: float = 3600.0) -> None:
        self.store = InboxStore(path)
        self.timeout_s = timeout_s

    async def _answered(self, fetch: Callable[[], Any], expire: Callable[[], None]) -> Any:
        """Poll ``fetch`` until the item is no longer pending; None (and the item
        expired) after the timeout, or expired at once if the wait is cancelled."""
        deadline = time.monotonic() + self.timeout_s
        try:
            while time.monotonic() < deadline:
                item = fetch()
                if item is not None and item.status != "pending":
                    return item
                await asyncio.sleep(POLL_S)
        except BaseException:
            expire()
            raise
        expire()
        return None

    async def decide(self, request: ApprovalRequest) -> Decision:
        item_id = self.store.put(request.card)
        if request.notify is not None:
            request.notify(
                "approval_waiting",
                {"id": item_id, "call": request.call, "timeout_s": self.timeout_s},
            )
        item = await self._answered(
            lambda: self.store.get(item_id), lambda: self.store.expire(item_id)
        )
        if item is None:
            return Decision(False, "inbox", f"no decision within {self.timeout_s:g} s")
        who = item.decided_by or "someone"
        grant = new_grant(request.card, item.grant_hours or 0) if item.approved_with_grant else None
        reason = item.reason or (
            "approved in the inbox" if item.status == "approved" else "denied in the inbox"
        )
        return Decision(item.status == "approved", who, reason, grant=grant, principal=who)

    async def elicit(
        self,
        server: str,
        message: str,
        schema: dict[str, Any] | None,
        *,
        context: dict[str, Any] | None = None,
    ) -> tuple[str, dict[str, Any] | None]:
        """An MCP server's elicitation, put to whoever answers the inbox
        (`luminaguard approvals answer`); declined when nobody answers in time."""
        item_id = self.store.ask(context or {}, server, message, schema or {})
        item = await self._answered(
            lambda: self.store.question(item_id), lambda: self.store.expire_question(item_id)
        )
        if item is None:
            return "decline", None
        return item.status, item.answer if item.status == "accept" else None
