"""Text from outside made inert before it reaches a terminal or a page.

Everything a tool, a command's output, a file name, a link target, an MCP
server or a model says can hold control characters and escape sequences
that a terminal would obey: clear the screen, move the cursor, redraw a
fake Diff Card over the real one. ``inert`` shows each such character
visibly (``\\x1b``) instead, and so do bidirectional overrides, which make
text read differently from what it is. Newlines stay where text is meant to
have lines (output, diffs); in a name they are shown as ``\\n``.
"""

from __future__ import annotations

import re
from typing import Any

# C0 controls but tab and newline, DEL, C1 controls, and the bidi controls.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\r": "\\r", "\x1b": "\\x1b"}
MULTILINE = frozenset({"diff", "stdout", "stderr", "command", "content", "output", "text"})
"""Keys whose values are meant to have lines."""


def _show(match: re.Match[str]) -> str:
    c = match.group()
    return _NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


def inert(text: str, *, newlines: bool = True) -> str:
    """``text`` with every character a terminal would act on shown, not obeyed."""
    out = _UNSAFE.sub(_show, text)
    return out if newlines else out.replace("\n", "\\n")


def inert_data(value: Any, key: str = "") -> Any:
    """``value`` (JSON-like) with every string made inert; newlines kept only
    under the keys of ``MULTILINE``."""
    if isinstance(value, str):
        return inert(value, newlines=key in MULTILINE)
    if isinstance(value, dict):
        return {inert(str(k), newlines=False): inert_data(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [inert_data(v, key) for v in value]
    return value


def cut(text: str, limit: int, what: str = "characters") -> str:
    """``text`` up to ``limit`` characters (at a line end where there is one
    near), then one line that says how much was cut and the whole text's
    SHA-256, so what is shown still names exactly what it stands for."""
    if len(text) <= limit:
        return text
    import hashlib  # only when something is cut: `luminaguard --help` does not pay for it

    head = text[:limit]
    if (nl := head.rfind("\n", limit // 2)) != -1:
        head = head[: nl + 1]
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    note = f"[… {len(text) - len(head):,} more {what} cut; {len(text):,} in all, sha256 {digest}]"
    return head + ("" if head.endswith("\n") else "\n") + note + "\n"


def bounded(value: Any, limit: int) -> Any:
    """``value`` (JSON-like) with every string longer than ``limit`` cut (``cut``)."""
    if isinstance(value, str):
        return cut(value, limit)
    if isinstance(value, dict):
        return {k: bounded(v, limit) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [bounded(v, limit) for v in value]
    return value


def wants_color(out: object) -> bool:
    """Colour for ``out``: a terminal, unless ``NO_COLOR`` is set (https://no-color.org)
    or ``TERM`` is ``dumb``."""
    import os

    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(out, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (OSError, ValueError):
        return False
