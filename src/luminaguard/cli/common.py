"""What every command group shares: the parser class, exit codes, the workspace argument."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NoReturn

from luminaguard.errors import UsageError

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
OUTCOME_EXIT = {"finished": 0, "error": 1, "limits_exceeded": 3, "denied": 4}


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def workspace_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workspace", type=Path, default=None, help="the workspace directory (default: .)"
    )


def workspace_dir(path: Path | None) -> Path:
    ws = (path or Path.cwd()).resolve()
    if not ws.is_dir():
        raise UsageError(f"workspace {ws} is not a directory")
    return ws


def say(*parts: object) -> None:
    """``print`` for text that holds strings from outside (a tool, a model, a
    server, a file name): made inert first (core/text.py). Not for JSON."""
    from luminaguard.core.text import inert

    print(inert(" ".join(str(p) for p in parts)))
