"""The `luminaguard` command. Thin: parses, calls the parts, prints.

One module per command group (run and demo, audit, sandbox and pool, classify
and approvals, swarm, mcp, doctor and metrics); each adds its parsers and
names its handler. Heavy modules are imported inside the handler that needs
them, so that `luminaguard --help` starts fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from luminaguard import __version__
from luminaguard.cli import (
    approvals,
    audit,
    completion,
    doctor,
    fleet,
    init,
    mcp,
    run,
    sandbox,
    serve,
    swarm,
    trust,
    vm,
)
from luminaguard.cli.common import EXIT_ERROR, EXIT_USAGE, Parser
from luminaguard.core.text import inert
from luminaguard.errors import LuminaGuardError, UserError

# The order of `luminaguard --help`.
GROUPS = (
    doctor.add_doctor,
    run.add_run,
    run.add_chat,
    run.add_demo,
    audit.add_audit,
    sandbox.add_sandbox,
    approvals.add_classify,
    approvals.add_approvals,
    approvals.add_grants,
    doctor.add_metrics,
    swarm.add_swarm,
    fleet.add_fleet,
    mcp.add_mcp,
    sandbox.add_pool,
    vm.add_vm,
    serve.add_serve,
    trust.add_trust,
    init.add_init,
    completion.add_completion,
)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="luminaguard", description="A local-first, secure runtime for AI agents.")
    p.add_argument("--version", action="version", version=f"luminaguard {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for add in GROUPS:
        add(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        code: int = args.handler(args)
        if args.command == "fleet" or getattr(args, "fleet_used", False):
            _exit_now(code)
        return code
    except UserError as exc:
        print(f"luminaguard: error: {inert(str(exc), newlines=False)}", file=sys.stderr)
        if "temporalio" in sys.modules and sys.argv[1:2] == ["fleet"]:
            _exit_now(EXIT_USAGE)
        return EXIT_USAGE
    except LuminaGuardError as exc:
        # The message may carry a server's or a command's words: inert.
        print(f"luminaguard: error: {inert(str(exc), newlines=False)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("luminaguard: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Whoever read our output stopped (`… | head`): not an error of ours.
        from luminaguard.ui.terminal import silence

        silence(sys.stdout)
        return 141


def _exit_now(code: int) -> None:
    """End a command that used the fleet here: the Temporal SDK's native threads can abort
    the interpreter while it finalizes (after the command's work is done and
    printed), which would turn its exit code into a crash."""
    import os

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
