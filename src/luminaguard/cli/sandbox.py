"""`luminaguard sandbox exec|preview` and `luminaguard pool bench|status`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from luminaguard.cli.common import (
    EXIT_OK,
    Parser,
    workspace_arg,
    workspace_dir,
)
from luminaguard.core.text import inert
from luminaguard.errors import UsageError

BACKEND_HELP = "sandbox backend: bwrap, gvisor or microvm (default from config: bwrap)"


def add_sandbox(sub: Any) -> None:
    """sandbox: run or preview a command in the sandbox."""
    sandbox = sub.add_parser("sandbox", help="run commands in the sandbox directly")
    ssub = sandbox.add_subparsers(
        dest="sandbox_command", metavar="ACTION", required=True, parser_class=Parser
    )
    sexec = ssub.add_parser("exec", help="run CMD in the sandbox; its exit code passes through")
    workspace_arg(sexec)
    sexec.add_argument(
        "--network", help="none (default), allow:HOST[,HOST...], test[:HOST,...] or host"
    )
    sexec.add_argument("--backend", help=BACKEND_HELP)
    sexec.add_argument("--timeout", type=float, help="wall-clock limit in seconds")
    sexec.add_argument("--read-only", action="store_true", help="mount the workspace read-only")
    sexec.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARG...]")
    sprev = ssub.add_parser(
        "preview", help="what CMD would change; the workspace is left untouched"
    )
    workspace_arg(sprev)
    sprev.add_argument("--backend", help=BACKEND_HELP)
    sprev.add_argument("--json", action="store_true", help="print JSON")
    sprev.add_argument("--timeout", type=float, help="wall-clock limit in seconds")
    sprev.add_argument(
        "--commit", action="store_true", help="apply the previewed changes afterwards"
    )
    sprev.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARG...]")
    sandbox.set_defaults(handler=cmd_sandbox)


def add_pool(sub: Any) -> None:
    """pool: the warm sandbox pools' benchmark and status."""
    pool = sub.add_parser("pool", help="the warm sandbox pool")
    psub = pool.add_subparsers(
        dest="pool_command", metavar="ACTION", required=True, parser_class=Parser
    )
    pbench = psub.add_parser(
        "bench", help="cold and warm acquire+exec latency beside a plain subprocess"
    )
    pbench.add_argument(
        "--backend", default="bwrap", help="sandbox backend: bwrap, gvisor or microvm"
    )
    pbench.add_argument("--n", type=int, default=50, help="samples per measurement")
    pbench.add_argument("--json", action="store_true", help="print JSON")
    pstatus = psub.add_parser("status", help="the local service's warm pools, per workspace")
    pstatus.add_argument("--json", action="store_true", help="print JSON")
    pool.set_defaults(handler=cmd_pool)


def _command(args: argparse.Namespace) -> list[str]:
    cmd: list[str] = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        raise UsageError(
            f"no command: luminaguard sandbox {args.sandbox_command} [options] -- CMD [ARG...]"
        )
    return cmd


def cmd_sandbox(args: argparse.Namespace) -> int:
    import asyncio

    from luminaguard.config import load_settings
    from luminaguard.sandbox import POOLED, open_sandbox
    from luminaguard.sandbox.network import NetworkMode

    cmd = _command(args)
    workspace = workspace_dir(args.workspace)
    settings = load_settings(workspace)
    if args.sandbox_command == "preview":
        return _preview(cmd, workspace, settings, args)
    network = NetworkMode.parse(args.network or settings.sandbox.network)
    backend = args.backend or settings.sandbox.backend
    if args.read_only and network.kind == "none" and backend in POOLED:
        # What a warm pool serves: the local service's, when it runs.
        from luminaguard.service_socket import exec_via_service

        answer = exec_via_service(
            settings.data_dir,
            workspace,
            cmd,
            timeout_s=args.timeout,
            backend=backend,
            settings=settings.sandbox,
        )
        if answer is not None:
            from luminaguard.service_socket import shown

            return shown(answer)
    sandbox_settings = settings.sandbox.model_copy(update={"network": str(network), "pool_size": 0})
    sandbox = open_sandbox(
        backend,
        workspace,
        sandbox_settings,
        read_only=args.read_only,
    )
    try:
        result = asyncio.run(sandbox.exec(cmd, timeout_s=args.timeout))
    finally:
        sandbox.close()
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    for attempt in sandbox.network_records():
        verdict = "allowed" if attempt["allowed"] else "BLOCKED"
        if attempt.get("would_block"):
            verdict += " (allow mode would block it)"
        if "reason" in attempt:
            verdict += f": {inert(str(attempt['reason']))}"
        print(
            f"luminaguard: network {attempt['method']} {attempt['host']}:{attempt['port']} {verdict}",
            file=sys.stderr,
        )
    if result.timed_out:
        print(f"luminaguard: command timed out after {result.duration_s:.1f} s", file=sys.stderr)
    return result.exit_code


def _pool_status(args: argparse.Namespace) -> int:
    from luminaguard.config import load_settings
    from luminaguard.service_socket import pool_stats_via_service

    settings = load_settings(Path.cwd())
    rows = pool_stats_via_service(settings.data_dir)
    if args.json:
        print(json.dumps({"service": rows is not None, "pools": rows or []}, indent=2))
    elif rows is None:
        print(
            "no local service is running: a command's warm pool lives as long as the command "
            "(`luminaguard serve` keeps pools warm across commands)"
        )
    elif not rows:
        print("the local service runs; no pool has served a command yet")
    else:
        print(pool_table(rows))
    return EXIT_OK


def pool_table(rows: list[dict[str, Any]]) -> str:
    """One line per pool, for a person."""
    lines = []
    for row in rows:
        spawn, acquire = row["spawn_ms"], row["acquire_ms"]
        lines.append(
            f"{row['backend']:<7} {inert(str(row['workspace']))}\n"
            f"        idle {row['idle']}  in use {row['in_use']}  waiting {row['waiters']}  "
            f"served {row['served']} ({row['served_idle']} from idle)  failures {row['failures']}  "
            f"replaced {row.get('replaced', 0)}\n"
            f"        spawn p50 {spawn['p50']} ms p95 {spawn['p95']} ms  "
            f"acquire p50 {acquire['p50']} ms p95 {acquire['p95']} ms"
        )
    return "\n".join(lines)


def _preview(cmd: list[str], workspace: Path, settings: Any, args: argparse.Namespace) -> int:
    import asyncio

    from luminaguard.policy.effects import classify_effects
    from luminaguard.sandbox import open_sandbox
    from luminaguard.ui.terminal import render_preview

    backend = args.backend or settings.sandbox.backend
    sandbox = open_sandbox(backend, workspace, settings.sandbox)
    try:
        preview = asyncio.run(sandbox.preview(cmd, timeout_s=args.timeout))
        try:
            assessment = classify_effects(preview.effects, timed_out=preview.result.timed_out)
            data = {**preview.to_dict(), **assessment.to_dict()}
            if args.json:
                print(json.dumps(data, indent=2, ensure_ascii=False))
            else:
                sys.stdout.write(render_preview(data))
            if args.commit:
                sandbox.commit(preview.handle)
                print("luminaguard: committed the previewed changes", file=sys.stderr)
        finally:
            sandbox.discard(preview.handle)
    finally:
        sandbox.close()
    return EXIT_OK


def cmd_pool(args: argparse.Namespace) -> int:
    import asyncio

    from luminaguard.config import load_settings
    from luminaguard.sandbox import POOLED
    from luminaguard.sandbox.bench import SERIES, pool_bench
    from luminaguard.stats import report

    if args.pool_command == "status":
        return _pool_status(args)
    if args.backend not in POOLED:
        known = ", ".join(POOLED)
        raise UsageError(f"no pool benchmark for backend {args.backend!r}; known backends: {known}")
    if args.n < 1:
        raise UsageError("--n must be at least 1")
    settings = load_settings(Path.cwd())
    if args.backend == "microvm":
        from luminaguard.vm.bench import microvm_pool_bench

        result = asyncio.run(microvm_pool_bench(settings.sandbox, args.n))
    else:
        result = asyncio.run(pool_bench(settings.sandbox, args.n, args.backend))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(report(result, SERIES))
    return EXIT_OK
