"""A run's journal as a person reads it: one line of text per record (what
was said, which tool was called with what, who decided, what came back),
for the run's page and for its live stream.

The text is plain and inert (``core.text``); the page escapes it and the
stream's script sets it as text, never as HTML.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from luminaguard.core.text import cut, inert

SHOWN = 2000
"""Characters of one record shown (the journal holds all of it)."""


def record_text(rec: dict[str, Any]) -> str:
    """What one record says, in words."""
    kind = str(rec.get("type", ""))
    data = rec.get("data")
    d: dict[str, Any] = data if isinstance(data, dict) else {}
    if kind == "user":
        text = str(d.get("content", ""))
    elif kind == "model_turn":
        calls = [
            f"→ {c.get('name')}({_json(c.get('arguments'))})"
            for c in d.get("tool_calls") or []
            if isinstance(c, dict)
        ]
        text = "\n".join([str(d.get("content") or "").strip(), *calls]).strip()
        text = text or "(no text)"
    elif kind == "tool_call":
        given = d.get("call")
        call: dict[str, Any] = given if isinstance(given, dict) else {}
        level = str(d.get("risk", "")).upper()
        text = f"{call.get('name')}({_json(call.get('arguments'))})" + (
            f"  {level}" if level else ""
        )
    elif kind == "decision":
        verdict = "approved" if d.get("approved") else "denied"
        reason = f": {d['reason']}" if d.get("reason") else ""
        text = f"{verdict} by {d.get('by')}{reason}"
    elif kind == "tool_result":
        text = ("error: " if d.get("is_error") else "") + str(d.get("output", ""))
    elif kind == "run_finished":
        text = str(d.get("outcome", ""))
    else:
        text = _json(d)
    return inert(cut(text, SHOWN))


def row(rec: dict[str, Any]) -> dict[str, str]:
    """A record as the page's row: its number, its type and its text."""
    return {
        "seq": str(rec.get("seq", "")),
        "type": str(rec.get("type", "")),
        "text": record_text(rec),
    }


def records_between(
    path: Path, start: int, end: int | None = None
) -> tuple[list[dict[str, Any]], int]:
    """The records written in bytes ``start``..``end`` of a journal (whole
    lines only), and the offset just past the last whole line read."""
    try:
        with path.open("rb") as f:
            f.seek(start)
            data = f.read() if end is None else f.read(max(0, end - start))
    except OSError:
        return [], start
    whole = data[: data.rfind(b"\n") + 1]
    out = []
    for line in whole.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out, start + len(whole)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
