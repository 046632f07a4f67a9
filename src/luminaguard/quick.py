"""The CLI's entry point, and its quick path.

``luminaguard sandbox exec --read-only … -- CMD`` is answered by the local
service's warm pool when one runs (``luminaguard serve``), before the full CLI
(argparse over every command, the settings models) is even imported: the
service reads the workspace's settings itself and runs the command, or
declines, and then the full CLI runs it exactly as it would have. Anything
this path does not recognise goes to the full CLI untouched, so its answers
are the full CLI's.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

FLAGS = ("--workspace", "--backend", "--timeout")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    code = sandbox_exec(args)
    if code is not None:
        return code
    from luminaguard.cli import main as full

    return full(args)


def sandbox_exec(args: list[str]) -> int | None:
    """The exit code of ``sandbox exec`` run by the service, or None (the full CLI's turn)."""
    request = _exec_request(args)
    if request is None:
        return None
    from luminaguard.errors import LuminaGuardError
    from luminaguard.paths import user_data_dir
    from luminaguard.service_socket import ask_service, shown

    try:
        answer = ask_service(user_data_dir(), request)
    except LuminaGuardError:
        return None  # the full CLI says what is wrong
    if answer is None or "exit_code" not in answer:
        return None
    return shown(answer)


def _exec_request(args: list[str]) -> dict[str, object] | None:
    """``sandbox exec --read-only [--workspace W] [--backend B] [--timeout S] -- CMD…``
    as a request to the service; None for anything else."""
    if args[:2] != ["sandbox", "exec"]:
        return None
    rest = args[2:]
    given: dict[str, str] = {}
    read_only = False
    at = 0
    while at < len(rest):
        arg = rest[at]
        if arg == "--":
            command = rest[at + 1 :]
            break
        at += 1
        if arg == "--read-only":
            read_only = True
            continue
        name, eq, value = arg.partition("=")
        if name not in FLAGS or name in given:
            return None
        if not eq:
            if at >= len(rest):
                return None
            value, at = rest[at], at + 1
        given[name] = value
    else:
        return None
    if not command or not read_only:
        return None
    try:
        timeout = float(given["--timeout"]) if "--timeout" in given else None
    except ValueError:
        return None
    workspace = os.path.realpath(given.get("--workspace") or os.getcwd())
    if not os.path.isdir(workspace):
        return None
    return {
        "op": "exec",
        "workspace": workspace,
        "backend": given.get("--backend"),
        "argv": command,
        "timeout_s": timeout,
    }
