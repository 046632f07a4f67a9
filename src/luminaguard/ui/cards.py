"""Renderings of a Diff Card: rich renderables (for the terminal and the
Textual inbox) and plain text.

Colours follow the level: 🟢 GREEN, 🟡 YELLOW, 🟠 ORANGE, 🔴 RED. Change types
are labelled Create / Edit / Delete / Command / Request; diffs are
syntax-coloured.
"""

from __future__ import annotations

import io
import json
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.syntax import Syntax
from rich.text import Text

from luminaguard.core.card import DiffCard
from luminaguard.core.risk import ICONS, Assessment, Reason, Risk
from luminaguard.core.text import inert, inert_data

COLOURS = {Risk.GREEN: "green", Risk.YELLOW: "yellow", Risk.ORANGE: "dark_orange", Risk.RED: "red"}
KIND_LABELS = {
    "command": "Command",
    "create": "Create",
    "edit": "Edit",
    "delete": "Delete",
    "request": "Request",
    "read": "Read",
}
CHANGE_STYLES = {
    "Create": "bold green",
    "Edit": "bold yellow",
    "Delete": "bold red",
    "Command": "bold cyan",
    "Request": "bold magenta",
    "Link": "bold blue",
    "Network": "bold red",
}


def inert_card(card: DiffCard) -> DiffCard:
    """``card`` with every string from outside made inert (core/text.py), for showing."""
    reasons = tuple(
        Reason(inert(r.rule, newlines=False), inert(r.text, newlines=False))
        for r in card.assessment.reasons
    )
    return DiffCard(
        tool=inert(card.tool, newlines=False),
        arguments=inert_data(card.arguments),
        assessment=Assessment(card.assessment.risk, reasons),
        kind=inert(card.kind, newlines=False),
        effects=inert_data(card.effects) if card.effects is not None else None,
        request=inert_data(card.request) if card.request is not None else None,
        context=inert_data(card.context),
    )


def header(card: DiffCard) -> Text:
    card = inert_card(card)
    risk = card.risk
    t = Text()
    t.append(f"{ICONS[risk]} {risk.name}", style=f"bold {COLOURS[risk]}")
    t.append(f"  {KIND_LABELS.get(card.kind, card.kind)} · {card.tool}", style="bold")
    agent = card.context.get("agent")
    if agent:
        t.append(f"   {agent}", style="dim")
    return t


def _tag(label: str, text: str) -> Text:
    t = Text()
    t.append(f"{label:<8}", style=CHANGE_STYLES.get(label, "bold"))
    t.append(text)
    return t


def body(card: DiffCard, *, output: bool = True) -> list[RenderableType]:
    card = inert_card(card)
    parts: list[RenderableType] = []
    if (card.effects or {}).get("rerun"):
        parts.append(
            Text(
                "⚠ NOT PREVIEWED FAITHFULLY: it needs the network, so if approved it runs AGAIN, "
                "for real, and what it changes may differ from what is shown here",
                style="bold red",
            )
        )
    if (card.effects or {}).get("live"):
        parts.append(
            Text(
                "⚠ RAN FOR REAL, with the network: its requests were made. What it changed in "
                "the workspace is below, still in a throw-away layer: approving commits exactly this",
                style="bold red",
            )
        )
    for reason in card.assessment.reasons:
        parts.append(Text(f"· {reason}", style=COLOURS[card.risk]))
    args = card.arguments if isinstance(card.arguments, dict) else {}
    if card.kind == "command" and "command" in args:
        parts.append(_tag("Command", f"$ {args['command']}"))
    elif card.kind == "request" or card.request is not None:
        request = card.request or {"tool": card.tool, "arguments": card.arguments}
        parts.append(_tag("Request", ""))
        parts.append(
            Syntax(
                json.dumps(request, indent=2, ensure_ascii=False, default=str),
                "json",
                word_wrap=True,
            )
        )
    e: dict[str, Any] = card.effects or {}
    for path in e.get("created_dirs", []):
        parts.append(_tag("Create", f"{path}/"))
    modes = {x["path"]: x["mode"] for x in e.get("executables", [])}
    created = e.get("created", [])
    for path in created[:SHOWN_ITEMS]:
        mode = f"  (executable, mode {modes[path]:o})" if path in modes else ""
        parts.append(_tag("Create", f"{path}{mode}"))
    shown = set(created[:SHOWN_ITEMS])
    for path in [p for p in created[SHOWN_ITEMS:] if p in modes]:
        # Every executable is shown, however many files there are.
        parts.append(_tag("Create", f"{path}  (executable, mode {modes[path]:o})"))
        shown.add(path)
    if len(created) > len(shown):
        parts.append(Text(f"… and {len(created) - len(shown):,} more created", style="bold"))
    if e.get("diff"):
        parts += _diff(str(e["diff"]))
    for m in e.get("modified", []):
        parts.append(_tag("Edit", str(m["path"])))
        if m.get("diff"):
            parts += _diff(str(m["diff"]))
    deleted = e.get("deleted", [])
    for path in deleted[:SHOWN_ITEMS]:
        parts.append(_tag("Delete", str(path)))
    if len(deleted) > SHOWN_ITEMS:
        parts.append(Text(f"… and {len(deleted) - SHOWN_ITEMS:,} more deleted", style="bold"))
    for c in e.get("mode_changes", []):
        parts.append(_tag("Edit", f"{c['path']}  mode {c['before']:o} → {c['after']:o}"))
    for s in e.get("symlinks", []):
        parts.append(
            _tag(
                "Link",
                f"{s['path']} -> {s['target']}"
                + ("  (points outside the workspace)" if s.get("outside") else ""),
            )
        )
    for a in e.get("network", []):
        what = (
            f"{a.get('method', '')} {a.get('host')}:{a.get('port')}"
            if a.get("host")
            else f"suspected ({a.get('evidence')})"
        )
        parts.append(
            _tag("Network", what + ("  blocked in the preview" if a.get("blocked") else ""))
        )
    for note in e.get("unobserved", []):
        parts.append(Text(f"? {note}", style="red"))
    if card.kind == "command" and "exit_code" in e:
        nothing = not any(
            e.get(k)
            for k in ("created", "created_dirs", "modified", "deleted", "mode_changes", "symlinks")
        )
        summary = "no files changed; " if nothing else ""
        parts.append(
            Text(
                f"{summary}exit code {e['exit_code']}"
                + (" (timed out)" if e.get("timed_out") else ""),
                style="dim",
            )
        )
        if output:
            for name in ("stdout", "stderr"):
                if str(e.get(name, "")).strip():
                    parts.append(Text(f"{name}:", style="dim"))
                    parts.append(Text(str(e[name]).rstrip("\n")))
    return parts


SHOWN_DIFF_LINES = 200
"""A diff on a terminal card: at most this many lines (the card in the
journal and the inbox hold up to ``core.effects.DIFF_LIMIT`` of it)."""
SHOWN_ITEMS = 100
"""Paths of one kind (created, deleted) listed on a terminal card; the rest are counted."""


def _diff(text: str) -> list[RenderableType]:
    lines = text.splitlines(keepends=True)
    if len(lines) <= SHOWN_DIFF_LINES:
        return [Syntax(text, "diff", word_wrap=True)]
    return [
        Syntax("".join(lines[:SHOWN_DIFF_LINES]), "diff", word_wrap=True),
        Text(
            f"… {len(lines) - SHOWN_DIFF_LINES:,} more lines of this diff "
            "(all of it: `luminaguard audit show RUN --json`)",
            style="bold",
        ),
    ]


def card_renderable(card: DiffCard, *, output: bool = True) -> RenderableType:
    return Panel(
        Group(*body(card, output=output)),
        title=header(card),
        title_align="left",
        border_style=COLOURS[card.risk],
    )


def render_card_text(
    card: DiffCard, *, color: bool = False, width: int = 100, output: bool = True
) -> str:
    buf = io.StringIO()
    console = Console(
        file=buf, force_terminal=color, no_color=not color, width=width, highlight=False
    )
    console.print(card_renderable(card, output=output))
    return buf.getvalue()
