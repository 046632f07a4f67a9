"""A Diff Card as HTML, for the web inbox: the very parts the terminal card
is made of (``ui.cards.body``), so the page can show nothing the terminal
would not, with its diffs as tables, unified or side by side, syntax-coloured
by the file's name.

Every string is escaped here, once, as it is written out: the text of a part
(made inert by ``ui.cards`` first) and each token of a diff. Class names and
colours come from this module, never from the card.
"""

from __future__ import annotations

import html
import re
from typing import Any

from rich.console import Console
from rich.syntax import Syntax
from rich.text import Text

from luminaguard.core.card import DiffCard
from luminaguard.ui.cards import body

HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
TOKEN_CLASSES = (
    # The most specific first: pygments' token types form a tree.
    ("Comment", "c"),
    ("Literal.String", "s"),
    ("Literal.Number", "n"),
    ("Keyword", "k"),
    ("Name.Builtin", "b"),
    ("Name.Function", "f"),
    ("Name.Class", "f"),
    ("Name.Tag", "k"),
    ("Name.Attribute", "b"),
    ("Operator.Word", "k"),
)
CSS = (
    ".diff{border-collapse:collapse;width:100%;font:.78rem ui-monospace,monospace;margin:.25rem 0}"
    ".diff td{padding:0 .3rem;white-space:pre-wrap;overflow-wrap:anywhere;vertical-align:top}"
    ".diff.split{table-layout:fixed}.diff col.nocol{width:2.2rem}"
    ".diff td.no{color:#6e7781;text-align:right;user-select:none;width:1%;white-space:nowrap}"
    ".diff .add{background:#e6ffec}.diff .del{background:#ffebe9}"
    ".diff .hunk td{background:#ddf4ff;color:#57606a}.diff .file td{font-weight:bold;background:#f6f8fa}"
    ".diff .note td{color:#57606a;font-style:italic}.diff .gap{background:#f6f8fa}"
    ".diff .c{color:#6e7781}.diff .s{color:#0a3069}.diff .n{color:#0550ae}"
    ".diff .k{color:#cf222e}.diff .b{color:#8250df}.diff .f{color:#6639ba}"
    ".cardtext{white-space:pre-wrap;overflow-wrap:anywhere;font:.8rem ui-monospace,monospace;"
    "background:#f6f8fa;padding:.5rem;border-radius:6px;margin:0}"
)
MODES = ("unified", "split")


def card_html(card: DiffCard, *, mode: str = "unified") -> str:
    """The card's body: its text parts in order, each diff a table."""
    console = Console(width=160, no_color=False, force_terminal=True, highlight=False)
    out: list[str] = []
    text: list[str] = []
    for part in body(card):
        if isinstance(part, Syntax) and part.lexer is not None and _lexer_name(part) == "diff":
            if text:
                out.append("<pre class='cardtext'>" + "".join(text) + "</pre>")
                text = []
            out.append(diff_html(part.code, mode=mode))
        else:
            text.append(_text_html(console, part) + "\n")
    if text:
        out.append("<pre class='cardtext'>" + "".join(text) + "</pre>")
    return "".join(out)


def _lexer_name(part: Syntax) -> str:
    lexer = part.lexer
    return str(getattr(lexer, "aliases", [""])[0] if lexer is not None else "")


def _text_html(console: Console, part: Any) -> str:
    """One part as escaped HTML, its colours and weight kept."""
    if isinstance(part, str):
        part = Text(part)
    out = []
    for seg in console.render(part, console.options.update(width=160)):
        if seg.control or not seg.text:
            continue
        text = html.escape(seg.text)
        css = []
        style = seg.style
        if style is not None:
            if style.bold:
                css.append("font-weight:bold")
            if style.dim:
                css.append("opacity:.7")
            if style.color is not None and not style.color.is_default:
                css.append("color:" + style.color.get_truecolor().hex)
        out.append(f"<span style='{';'.join(css)}'>{text}</span>" if css else text)
    return "".join(out).rstrip("\n")


def diff_html(diff: str, *, mode: str = "unified") -> str:
    """A unified diff as a table: every line of it, numbered, ``+`` and ``-``
    lines marked, code coloured by the file's type; ``split`` puts the old
    side left and the new side right. A line outside a hunk (a file's
    header, a note) is shown whole."""
    split = mode == "split"
    span = 4 if split else 3
    rows: list[str] = []
    lexer: Any = None
    old_no = new_no = old_left = new_left = 0
    dels: list[tuple[int, str]] = []  # a split view's run of - and + lines
    adds: list[tuple[int, str]] = []

    def pair() -> None:
        for i in range(max(len(dels), len(adds))):
            left = _cells(dels[i], "del", lexer) if i < len(dels) else _gap()
            right = _cells(adds[i], "add", lexer) if i < len(adds) else _gap()
            rows.append(f"<tr>{left}{right}</tr>")
        dels.clear()
        adds.clear()

    def whole(css: str, line: str) -> None:
        pair()
        rows.append(f"<tr class='{css}'><td colspan='{span}'>{html.escape(line)}</td></tr>")

    for line in diff.splitlines():
        sign, code = line[:1], line[1:]
        if (old_left <= 0 and new_left <= 0) or sign not in ("+", "-", " "):
            # Outside a hunk (or a note inside one, such as "\ No newline").
            hunk = HUNK.match(line)
            if hunk:
                old_no, new_no = int(hunk.group(1)), int(hunk.group(3))
                old_left = int(hunk.group(2) or 1)
                new_left = int(hunk.group(4) or 1)
                whole("hunk", line)
            elif line.startswith(("--- ", "+++ ", "diff ")):
                if line.startswith("+++ "):
                    lexer = _lexer_for(line[4:].removeprefix("b/"))
                whole("file", line)
            else:
                whole("note", line)
            continue
        if split:
            if sign == "-":
                dels.append((old_no, code))
            elif sign == "+":
                adds.append((new_no, code))
            else:
                pair()
                rows.append(
                    f"<tr>{_cells((old_no, code), '', lexer)}{_cells((new_no, code), '', lexer)}</tr>"
                )
        else:
            kind = {"+": " class='add'", "-": " class='del'"}.get(sign, "")
            rows.append(
                f"<tr{kind}><td class='no'>{old_no if sign != '+' else ''}</td>"
                f"<td class='no'>{new_no if sign != '-' else ''}</td>"
                f"<td>{html.escape(sign)}{_highlight(code, lexer)}</td></tr>"
            )
        if sign != "+":
            old_no += 1
            old_left -= 1
        if sign != "-":
            new_no += 1
            new_left -= 1
    pair()
    if split:  # two equal halves, whatever the lines' lengths
        cols = "<col class='nocol'><col><col class='nocol'><col>"
        return f"<table class='diff split'><colgroup>{cols}</colgroup>" + "".join(rows) + "</table>"
    return "<table class='diff'>" + "".join(rows) + "</table>"


def _cells(line: tuple[int, str], kind: str, lexer: Any) -> str:
    number, code = line
    css = f" class='{kind}'" if kind else ""
    mark = {"add": "+", "del": "-"}.get(kind, " ")
    return f"<td class='no'>{number}</td><td{css}>{mark}{_highlight(code, lexer)}</td>"


def _gap() -> str:
    return "<td class='no'></td><td class='gap'></td>"


def _lexer_for(name: str) -> Any:
    from pygments.lexers import get_lexer_for_filename
    from pygments.util import ClassNotFound

    try:
        return get_lexer_for_filename(name, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return None


def _highlight(code: str, lexer: Any) -> str:
    """One line of code, escaped, its tokens in spans of our own classes."""
    if lexer is None:
        return html.escape(code)
    out = []
    for token, value in lexer.get_tokens(code):
        css = _class_of(str(token))
        text = html.escape(value)
        out.append(f"<span class='{css}'>{text}</span>" if css else text)
    return "".join(out)


def _class_of(token: str) -> str:
    name = token.removeprefix("Token.")
    for prefix, css in TOKEN_CLASSES:
        if name == prefix or name.startswith(prefix + "."):
            return css
    return ""
