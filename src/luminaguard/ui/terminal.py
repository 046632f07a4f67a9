"""The plain-terminal view of a run: model text, each tool call with its level,
each decision, what each action changed, and the end."""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
import time
from typing import Any, TextIO

from luminaguard.core.risk import ICONS, Assessment
from luminaguard.core.text import bounded, inert, inert_data, wants_color
from luminaguard.messages import ToolCall, ToolResult
from luminaguard.protocols import Decision

EXCERPT_LINES = 12


def _args(call: ToolCall) -> str:
    a = call.arguments
    if isinstance(a, dict):
        shown = {
            k: (v if not isinstance(v, str) or len(v) <= 60 else v[:57] + "...")
            for k, v in a.items()
        }
        return ", ".join(f"{k}={v!r}" for k, v in shown.items())
    return repr(a)[:80]


def _indent(text: str, prefix: str = "     ", limit: int = EXCERPT_LINES) -> str:
    lines = text.rstrip("\n").splitlines()
    if len(lines) > limit:
        lines = [*lines[:limit], f"... ({len(lines) - limit} more lines)"]
    return "\n".join(prefix + line for line in lines)


def silence(out: TextIO) -> None:
    """Point ``out``'s descriptor at /dev/null, so that what is still buffered,
    and Python's own flush at exit, fail quietly instead of with a traceback."""
    import os

    try:
        fd = out.fileno()
    except (OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


PROGRESS_EVERY_S = 1.0


def render_card(card: Any, **options: Any) -> str:
    """``ui.cards.render_card_text``, imported (with rich, ~60 ms) at the first
    card, not before a run's first request."""
    from luminaguard.ui.cards import render_card_text

    return render_card_text(card, **options)


class TerminalReport:
    """Prints run events as they happen: model text, each call with its level,
    the Diff Card of what a policy or grant approved, each decision, results."""

    def __init__(self, out: TextIO | None = None, *, show_cards: bool = True) -> None:
        self.out = out or sys.stdout
        self.show_cards = show_cards
        self.color = wants_color(self.out)
        self._progress_at = float("-inf")

    def _say(self, text: str) -> None:
        """Write text that holds strings from outside (a model, a tool, a file
        name): made inert, so nothing in it can act on the terminal."""
        self.out.write(inert(text))

    def _card(self, text: str) -> None:
        """A rendered card: inert already (ui/cards.py), its colours are ours."""
        self.out.write("\n".join("   " + line for line in text.rstrip("\n").splitlines()) + "\n")

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        if self.closed:
            return
        try:
            getattr(self, f"on_{event}", lambda d: None)(data)
            self.out.flush()
        except BrokenPipeError:
            # The reader went away (`run … | head`): the run goes on, unseen.
            self.closed = True
            silence(self.out)

    closed = False

    streaming = False

    def on_model_delta(self, d: dict[str, Any]) -> None:
        if not self.streaming:
            self._say("\n💭 ")
            self.streaming = True
        self._say(d["text"])

    def on_model(self, d: dict[str, Any]) -> None:
        if self.streaming:  # the text is on the screen already
            self.streaming = False
            self._say("\n")
            return
        prefix = "✔ " if d["final"] else "💭 "
        self._say(f"\n{prefix}{d['content']}\n")

    def on_tools_changed(self, d: dict[str, Any]) -> None:
        added = ", ".join(d["added"]) or "none"
        removed = ", ".join(d["removed"]) or "none"
        self._say(f"🔄 tools changed: added {added}; removed {removed}\n")

    def on_tool_call(self, d: dict[str, Any]) -> None:
        call: ToolCall = d["call"]
        a: Assessment = d["assessment"]
        self._say(f"{ICONS[a.risk]} {call.name}({_args(call)})  [{a.risk.label}]\n")

    def on_decision(self, d: dict[str, Any]) -> None:
        from luminaguard.ui.cards import render_card_text

        decision: Decision = d["decision"]
        card = d.get("card")
        if decision.principal is None and card is not None and self.show_cards:
            text = render_card_text(card, color=self.color, output=False)
            self._card(text)
        if not decision.approved:
            self._say(f"   ✘ denied by {decision.by}: {decision.reason}\n")
        else:
            self._say(f"   ✔ approved by {decision.by}: {decision.reason}\n")

    def on_mcp_server(self, d: dict[str, Any]) -> None:
        loud = "⚠ " if "NOT SANDBOXED" in d["mode"] or d.get("error") else ""
        if d.get("error"):
            self._say(
                f"{loud}MCP server {d['name']} is unavailable, its tools are not offered: {d['error']}\n"
            )
            return
        self._say(f"{loud}MCP server {d['name']}: {d['tools']} tool(s), {d['mode']}\n")

    def on_model_waiting(self, d: dict[str, Any]) -> None:
        self._say(f"   ⏳ waiting for {d['spec']} ({d['attempt']}, {d['after_s']:g} s so far)…\n")

    def on_tool_progress(self, d: dict[str, Any]) -> None:
        # A server may send many: one line a second at most, and the last.
        now = time.monotonic()
        last = d["total"] is not None and d["progress"] >= d["total"]
        if now - self._progress_at < PROGRESS_EVERY_S and not last:
            return
        self._progress_at = now
        of = f"/{d['total']:g}" if d["total"] is not None else ""
        about = f": {d['message']}" if d["message"] else ""
        self._say(f"   ⏳ {d['tool']} {d['progress']:g}{of}{about}\n")

    def on_approval_waiting(self, d: dict[str, Any]) -> None:
        self._say(
            f"   ⏳ waiting for approval of card #{d['id']} in the inbox: open `luminaguard "
            f"approvals` (or `luminaguard approvals decide {d['id']} approve|deny`); "
            f"denied after {d['timeout_s']:g} s\n"
        )

    def on_model_retry(self, d: dict[str, Any]) -> None:
        self._say(f"   ⚠ {d['spec']} failed ({d['attempt']}): {d['error']}; {d['next']}\n")

    def on_limited(self, d: dict[str, Any]) -> None:
        self._say(f"   ⏳ {d['message']}\n")

    def on_tool_result(self, d: dict[str, Any]) -> None:
        result: ToolResult = d["result"]
        call: ToolCall = d["call"]
        if result.data.get("denied"):
            return
        if (result.is_error and "exit_code" not in result.data) or call.name == "shell":
            self._say(_indent(result.output) + "\n")
        changes = result.data.get("changes")
        if changes and any(changes[k] for k in ("created", "modified", "deleted")):
            marks = [("+", "created"), ("~", "modified"), ("-", "deleted")]
            lines = [f"{m} {p}" for m, k in marks for p in changes[k]]
            self._say("   changed: " + ", ".join(lines) + "\n")


def render_preview(data: dict[str, Any]) -> str:
    """A plain-text Diff Card of a preview's JSON (every string from it made inert)."""
    from luminaguard.core.risk import Risk

    data = inert_data(data)
    risk = Risk.parse(data["risk"])
    lines = [f"{ICONS[risk]} {risk.name}  $ {' '.join(data['command'])}"]
    lines += [f"   · {r}" for r in data["reasons"]]
    lines.append(
        f"   exit code {data['exit_code']}" + (" (timed out)" if data["timed_out"] else "")
    )
    for path in data["created_dirs"]:
        lines.append(f"   + {path}/")
    modes = {x["path"]: x["mode"] for x in data.get("executables", [])}
    for path in data["created"]:
        mode = f"  (executable, mode {modes[path]:o})" if path in modes else ""
        lines.append(f"   + {path}{mode}")
    for m in data["modified"]:
        lines.append(f"   ~ {m['path']}")
        lines += [f"       {line}" for line in m["diff"].rstrip("\n").splitlines()]
    for path in data["deleted"]:
        lines.append(f"   - {path}")
    for c in data["mode_changes"]:
        lines.append(f"   ± {c['path']}  mode {c['before']:o} → {c['after']:o}")
    for s in data["symlinks"]:
        lines.append(
            f"   → {s['path']} -> {s['target']}"
            + ("  (points outside the workspace)" if s["outside"] else "")
        )
    for a in data["network"]:
        what = (
            f"{a.get('method', '')} {a.get('host')}:{a.get('port')}"
            if "host" in a
            else f"suspected: {a.get('evidence')}"
        )
        lines.append(f"   ⚡ network {what}")
    for note in data["unobserved"]:
        lines.append(f"   ? {note}")
    for name in ("stdout", "stderr"):
        if data[name].strip():
            lines.append(f"   {name}:")
            lines.append(_indent(data[name], "     "))
    return "\n".join(lines) + "\n"


JSON_STRING_LIMIT = 64 * 1024


class JsonReport:
    """Run events as JSON lines, one per event, for scripts (``run --json``):
    ``{"event": NAME, ...}`` with each value as data (cards, calls, decisions,
    results by their ``to_dict``). A closed reader never stops the run."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.closed = False

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        self.emit({"event": event, **data})

    def emit(self, record: dict[str, Any]) -> None:
        if self.closed:
            return
        try:
            # Long strings cut with their size and hash, as on a card.
            line = json.dumps(record, default=_as_data, ensure_ascii=False)
            if len(line) > JSON_STRING_LIMIT:
                line = json.dumps(bounded(json.loads(line), JSON_STRING_LIMIT), ensure_ascii=False)
            self.out.write(line + "\n")
            self.out.flush()
        except BrokenPipeError:
            self.closed = True
            silence(self.out)


def _as_data(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, enum.Enum):
        return getattr(value, "label", value.value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)
