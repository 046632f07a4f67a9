"""The `luminaguard` command. Thin: parses, calls the parts, prints.

Heavy modules are imported inside the command that needs them, so that
`luminaguard --help` starts fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from luminaguard import __version__
from luminaguard.errors import LuminaGuardError, UsageError, UserError

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
OUTCOME_EXIT = {"finished": 0, "error": 1, "limits_exceeded": 3, "denied": 4}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="luminaguard", description="A local-first, secure runtime for AI agents.")
    p.add_argument("--version", action="version", version=f"luminaguard {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    doctor = sub.add_parser("doctor", help="what works on this machine, and why not")
    doctor.add_argument("--json", action="store_true", help="print JSON")

    run = sub.add_parser("run", help="run an agent on a task")
    run.add_argument("task", nargs="?", help="what the agent should do")
    run.add_argument(
        "--resume", metavar="RUN_ID", help="continue an interrupted run from its journal"
    )
    _workspace_arg(run)
    run.add_argument("--model", help="PROVIDER/MODEL, e.g. scripted/playbook.json")
    run.add_argument(
        "--playbook", type=Path, help="replay this playbook (same as --model scripted/PATH)"
    )
    run.add_argument("--policy", type=Path, help="policy file (TOML)")
    run.add_argument("--sandbox", help="sandbox backend (default from config: bwrap)")
    run.add_argument("--max-steps", type=int, help="model turns before the run is stopped")
    run.add_argument(
        "--approver",
        choices=["prompt", "inbox", "none"],
        help="who answers approvals: the terminal prompt (default with a terminal), "
        "the shared approval inbox (`luminaguard approvals`), or nobody (deny)",
    )
    run.add_argument(
        "--as", dest="as_", metavar="NAME", help="the principal approving at the prompt"
    )

    demo = sub.add_parser("demo", help="the bundled demo, offline and unattended")
    demo.add_argument(
        "--workspace", type=Path, help="an empty or new directory (default: a new temp dir)"
    )

    audit = sub.add_parser("audit", help="the tamper-evident run journals")
    asub = audit.add_subparsers(
        dest="audit_command", metavar="ACTION", required=True, parser_class=_Parser
    )
    alist = asub.add_parser("list", help="every run, oldest first")
    alist.add_argument("--json", action="store_true")
    ashow = asub.add_parser("show", help="one run's journal")
    ashow.add_argument("run", help="run id (or a unique prefix)")
    ashow.add_argument("--json", action="store_true")
    averify = asub.add_parser("verify", help="check the hash chain of one run, or of every run")
    averify.add_argument("run", nargs="?", help="run id (default: every run)")
    averify.add_argument("--json", action="store_true")

    sandbox = sub.add_parser("sandbox", help="run commands in the sandbox directly")
    ssub = sandbox.add_subparsers(
        dest="sandbox_command", metavar="ACTION", required=True, parser_class=_Parser
    )
    sexec = ssub.add_parser("exec", help="run CMD in the sandbox; its exit code passes through")
    _workspace_arg(sexec)
    sexec.add_argument(
        "--network", help="none (default), allow:HOST[,HOST...], test[:HOST,...] or host"
    )
    sexec.add_argument("--backend", help="sandbox backend (default from config: bwrap)")
    sexec.add_argument("--timeout", type=float, help="wall-clock limit in seconds")
    sexec.add_argument("--read-only", action="store_true", help="mount the workspace read-only")
    sexec.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARG...]")
    sprev = ssub.add_parser(
        "preview", help="what CMD would change; the workspace is left untouched"
    )
    _workspace_arg(sprev)
    sprev.add_argument("--json", action="store_true", help="print JSON")
    sprev.add_argument("--timeout", type=float, help="wall-clock limit in seconds")
    sprev.add_argument(
        "--commit", action="store_true", help="apply the previewed changes afterwards"
    )
    sprev.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARG...]")

    classify = sub.add_parser("classify", help="risk of actions read as JSON lines on stdin")
    _workspace_arg(classify)

    appr = sub.add_parser(
        "approvals", help="the shared approval inbox (Textual), or list / decide from scripts"
    )
    appr.add_argument(
        "--as", dest="as_", metavar="NAME", help="who is deciding (default: the local user)"
    )
    asub2 = appr.add_subparsers(dest="approvals_command", metavar="ACTION", parser_class=_Parser)
    alist2 = asub2.add_parser("list", help="pending cards, oldest first")
    alist2.add_argument("--json", action="store_true")
    adecide = asub2.add_parser("decide", help="approve or deny one pending card")
    adecide.add_argument("id", type=int)
    adecide.add_argument("verdict", choices=["approve", "deny"])
    adecide.add_argument("--reason", default="")
    adecide.add_argument(
        "--grant-hours", type=float, help="with approve: also grant matching actions for H hours"
    )
    adecide.add_argument(
        "--step", action="store_true", help="decide every pending card of the same step"
    )
    adecide.add_argument(
        "--as", dest="as_", metavar="NAME", help="who is deciding (default: the local user)"
    )

    aquestions = asub2.add_parser(
        "questions", help="MCP servers' questions (elicitations) waiting for an answer"
    )
    aquestions.add_argument("--json", action="store_true")
    aanswer = asub2.add_parser(
        "answer", help="answer a question: NAME=VALUE for each field, or --decline / --cancel"
    )
    aanswer.add_argument("id", type=int)
    aanswer.add_argument("fields", nargs="*", metavar="NAME=VALUE")
    refuse = aanswer.add_mutually_exclusive_group()
    refuse.add_argument("--decline", action="store_true", help="refuse to give the information")
    refuse.add_argument("--cancel", action="store_true", help="dismiss the question")
    aanswer.add_argument(
        "--as", dest="as_", metavar="NAME", help="who is answering (default: the local user)"
    )

    metrics = sub.add_parser(
        "metrics", help="provider metrics: latency, success, tokens, cost, win rate"
    )
    metrics.add_argument("--format", choices=["json", "prometheus"], default="json")
    metrics.add_argument(
        "--since", help="only requests since: a duration (90s, 15m, 2h, 7d) ago or a Unix time"
    )
    metrics.add_argument("--until", help="only requests until: a duration ago or a Unix time")

    swarm = sub.add_parser(
        "swarm", help="many agents working a backlog, each in its own git worktree"
    )
    wsub = swarm.add_subparsers(
        dest="swarm_command", metavar="ACTION", required=True, parser_class=_Parser
    )
    wadd = wsub.add_parser("add", help="add work items")
    wadd.add_argument(
        "--repo", type=Path, default=Path("."), help="the git repository (default: .)"
    )
    source = wadd.add_mutually_exclusive_group()
    source.add_argument("--playbook", type=Path, help="run the item on this scripted playbook")
    source.add_argument("--model", help="run the item on this model (PROVIDER/MODEL)")
    wadd.add_argument("--count", type=int, default=1, help="add N identical items")
    wadd.add_argument("--priority", type=int, default=0, help="higher runs first")
    wadd.add_argument(
        "--max-attempts", type=int, default=3, help="attempts before the item is failed"
    )
    wadd.add_argument("task")
    wrun = wsub.add_parser("run", help="run agents on the queue")
    wrun.add_argument("--repo", type=Path, default=Path("."))
    wrun.add_argument("--agents", type=int, required=True)
    wrun.add_argument(
        "--until-empty", action="store_true", help="stop when nothing is queued or running"
    )
    wrun.add_argument("--policy", type=Path, help="policy file for every agent")
    wrun.add_argument(
        "--approver",
        choices=["inbox", "none"],
        default="inbox",
        help="where approvals go (default: the shared inbox)",
    )
    wrun.add_argument("--keep-worktrees", action="store_true")
    wrun.add_argument("--lease", type=float, default=30.0, help="lease length in seconds")
    wrun.add_argument(
        "--hung-after",
        type=float,
        default=5.0,
        help="seconds without a heartbeat before a worker is replaced",
    )
    wstat = wsub.add_parser("status", help="items and agents")
    wstat.add_argument("--repo", type=Path, default=Path("."))
    wstat.add_argument("--json", action="store_true")

    mcp = sub.add_parser("mcp", help="MCP servers from [mcp.servers] in luminaguard.toml")
    msub = mcp.add_subparsers(
        dest="mcp_command", metavar="ACTION", required=True, parser_class=_Parser
    )
    mlist = msub.add_parser("list", help="the configured servers")
    _workspace_arg(mlist)
    mlist.add_argument("--json", action="store_true")
    mtools = msub.add_parser("tools", help="a server's tools, with their annotations and level")
    _workspace_arg(mtools)
    mtools.add_argument("server")
    mtools.add_argument("--json", action="store_true")
    mres = msub.add_parser("resources", help="a server's resources")
    _workspace_arg(mres)
    mres.add_argument("server")
    mres.add_argument("--json", action="store_true")
    mread = msub.add_parser("read", help="read one resource")
    _workspace_arg(mread)
    mread.add_argument("server")
    mread.add_argument("uri")
    mprompts = msub.add_parser("prompts", help="a server's prompts")
    _workspace_arg(mprompts)
    mprompts.add_argument("server")
    mprompts.add_argument("--json", action="store_true")
    mcall = msub.add_parser(
        "call", help="call a tool and print the result (recorded in the audit journal)"
    )
    _workspace_arg(mcall)
    mcall.add_argument("server")
    mcall.add_argument("tool")
    mcall.add_argument("arguments", nargs="?", default="{}", help="a JSON object")
    mcall.add_argument("--json", action="store_true")

    mlogin = msub.add_parser(
        "login", help="authorize with an HTTP server (OAuth): open the printed address"
    )
    _workspace_arg(mlogin)
    mlogin.add_argument("server")
    mlogin.add_argument(
        "--no-browser", action="store_true", help="only print the address, do not open a browser"
    )
    mlogout = msub.add_parser("logout", help="forget an HTTP server's stored tokens")
    _workspace_arg(mlogout)
    mlogout.add_argument("server")

    pool = sub.add_parser("pool", help="the warm sandbox pool")
    psub = pool.add_subparsers(
        dest="pool_command", metavar="ACTION", required=True, parser_class=_Parser
    )
    pbench = psub.add_parser(
        "bench", help="cold and warm acquire+exec latency beside a plain subprocess"
    )
    pbench.add_argument("--backend", default="bwrap", help="sandbox backend (bwrap)")
    pbench.add_argument("--n", type=int, default=50, help="samples per measurement")
    pbench.add_argument("--json", action="store_true", help="print JSON")
    return p


def _workspace_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workspace", type=Path, default=None, help="the workspace directory (default: .)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        handler = COMMANDS[args.command]
        return handler(args)
    except UserError as exc:
        print(f"luminaguard: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except LuminaGuardError as exc:
        print(f"luminaguard: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("luminaguard: interrupted", file=sys.stderr)
        return 130


def _workspace(path: Path | None) -> Path:
    ws = (path or Path.cwd()).resolve()
    if not ws.is_dir():
        raise UsageError(f"workspace {ws} is not a directory")
    return ws


def cmd_doctor(args: argparse.Namespace) -> int:
    from luminaguard.doctor import OK, run_checks

    checks = run_checks()
    if args.json:
        print(json.dumps({"checks": [c.to_dict() for c in checks]}, indent=2))
    else:
        marks = {"ok": "✔", "warn": "!", "missing": "✘", "failed": "✘", "unknown": "?"}
        for c in checks:
            print(f"{marks[c.status]} {c.name:<16} {c.detail}")
    return EXIT_ERROR if any(c.required and c.status != OK for c in checks) else EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from luminaguard.config import load_settings

    if args.resume and args.task:
        raise UsageError("give a TASK or --resume RUN_ID, not both")
    if not args.resume and not args.task:
        raise UsageError('no task: luminaguard run "TASK" (or --resume RUN_ID)')
    workspace = _workspace(args.workspace)
    settings = load_settings(workspace)
    if args.model and args.playbook:
        raise UsageError("give --model or --playbook, not both")
    spec = f"scripted/{args.playbook}" if args.playbook else args.model or settings.model
    if not spec and not settings.router.groups and not args.resume:
        raise UsageError(
            "no model: pass --model PROVIDER/MODEL or --playbook FILE, or set model (or [router.groups]) in luminaguard.toml"
        )
    max_steps = args.max_steps if args.max_steps is not None else settings.agent.max_steps
    if max_steps < 1:
        raise UsageError("--max-steps must be at least 1")
    return _run_agent(
        args.task or "",
        settings=settings,
        workspace=workspace,
        spec=spec,
        policy_path=args.policy or settings.policy,
        backend=args.sandbox or settings.sandbox.backend,
        max_steps=max_steps,
        approver_name=args.approver,
        principal=args.as_,
        resume=args.resume,
    )


def _run_agent(
    task: str,
    *,
    settings: Any,
    workspace: Path,
    spec: str | None,
    policy_path: Path | None,
    backend: str,
    max_steps: int,
    approver_name: str | None,
    principal: str | None = None,
    resume: str | None = None,
) -> int:
    import asyncio

    from luminaguard.agent.session import Session, SessionOptions
    from luminaguard.policy.approver import make_approver
    from luminaguard.policy.policyfile import load_policy
    from luminaguard.ui.cards import render_card_text
    from luminaguard.ui.terminal import TerminalReport

    policy = load_policy(policy_path)
    options = SessionOptions(
        workspace=workspace,
        spec=spec,
        policy=policy,
        backend=backend,
        max_steps=max_steps,
        approver=make_approver(
            approver_name,
            principal,
            settings.data_dir,
            policy.approval_timeout_s,
            render=render_card_text,
        ),
        report=TerminalReport(),
    )
    session = Session(settings, options, task=task, resume=resume)
    verb = "resume" if resume else "run"
    print(
        f"▶ {verb} {session.run_id} in {session.workspace}  (model {session.spec or 'router'}, policy: {session.policy.source})"
    )
    try:
        result = asyncio.run(session.run())
    finally:
        session.close()
    print(
        f"\n■ {result.outcome}: {result.message}"
        if result.outcome != "finished"
        else "\n■ finished"
    )
    print(
        f"  steps {result.steps}, tokens {result.usage.input_tokens} in / {result.usage.output_tokens} out, cost ${result.cost_usd:.4f}"
    )
    print(f"  journal {result.journal}")
    print(f"  verify with: luminaguard audit verify {result.run_id}")
    return OUTCOME_EXIT.get(result.outcome, EXIT_ERROR)


def cmd_demo(args: argparse.Namespace) -> int:
    import shutil
    import tempfile
    import time
    from importlib import resources

    from luminaguard.config import load_settings

    bundle = resources.files("luminaguard") / "demo"
    if args.workspace:
        workspace = args.workspace.resolve()
        if workspace.exists() and any(workspace.iterdir()):
            raise UsageError(f"demo workspace {workspace} is not empty")
        workspace.mkdir(parents=True, exist_ok=True)
    else:
        workspace = Path(tempfile.mkdtemp(prefix="luminaguard-demo-"))
    with resources.as_file(bundle) as bundle_dir:
        shutil.copytree(
            bundle_dir / "project",
            workspace,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        started = time.monotonic()
        print("LuminaGuard demo: an agent fixes a failing test, offline, on a scripted model.")
        print("Every tool call runs in the sandbox; the bundled policy answers the approvals.\n")
        code = _run_agent(
            "The tests of this project fail. Find out why and fix the code.",
            settings=load_settings(workspace),
            workspace=workspace,
            spec=f"scripted/{bundle_dir / 'playbook.json'}",
            policy_path=bundle_dir / "policy.toml",
            backend="bwrap",
            max_steps=20,
            approver_name="none",
        )
    print(f"  demo took {time.monotonic() - started:.1f} s; the fixed project is in {workspace}")
    return code


def cmd_audit(args: argparse.Namespace) -> int:
    from luminaguard.audit.index import RunIndex
    from luminaguard.audit.journal import read_records, verify
    from luminaguard.config import load_settings

    settings = load_settings(Path.cwd())
    index = RunIndex(settings.data_dir / "index.db")
    if args.audit_command == "list":
        runs = index.list()
        if args.json:
            keys = ("id", "task", "started", "outcome", "path")
            print(json.dumps([{k: r[k] for k in keys} for r in runs], indent=2))
        elif not runs:
            print(f"no runs recorded in {settings.data_dir}")
        for r in runs if not args.json else []:
            print(
                f"{r['id']}  {r['started'][:19]}  {r['outcome'] or 'running':<16} {r['task'][:60]}"
            )
        return EXIT_OK
    if args.audit_command == "show":
        run = _get_run(index, args.run)
        records = read_records(Path(run["path"]))
        if args.json:
            print(json.dumps({"run": run, "records": records}, indent=2, ensure_ascii=False))
        else:
            print(
                f"run {run['id']}: {run['task']}\n  started {run['started']}, outcome {run['outcome'] or 'running'}\n  journal {run['path']}\n"
            )
            for rec in records:
                print(
                    f"{rec.get('seq', '?'):>4} {str(rec.get('ts', ''))[11:23]} {rec.get('type', '?'):<13} {_summary(rec)}"
                )
        return EXIT_OK
    runs = [_get_run(index, args.run)] if args.run else index.list()
    results = []
    for run in runs:
        problems = verify(Path(run["path"]), run["records"], run["head"])
        results.append(
            {
                "id": run["id"],
                "path": run["path"],
                "ok": not problems,
                "problems": [str(p) for p in problems],
            }
        )
    if args.json:
        print(json.dumps({"ok": all(r["ok"] for r in results), "runs": results}, indent=2))
    else:
        for r in results:
            print(f"{'✔' if r['ok'] else '✘'} {r['id']}  {r['path']}")
            for problem in r["problems"]:
                print(f"    {problem}")
        if not results:
            print("no runs to verify")
    return EXIT_OK if all(r["ok"] for r in results) else EXIT_ERROR


def _get_run(index: Any, run_id: str) -> dict[str, Any]:
    run: dict[str, Any] | None = index.get(run_id)
    if run is None:
        raise UsageError(f"no run {run_id!r} in the audit index (see `luminaguard audit list`)")
    return run


def _summary(rec: dict[str, Any]) -> str:
    d = rec.get("data", {})
    t = rec.get("type")
    if t == "model_turn":
        calls = ", ".join(c["name"] for c in d.get("tool_calls", []))
        return (d.get("content") or "")[:60] + (f" → {calls}" if calls else "")
    if t == "tool_call":
        return f"{d['call']['name']} [{d.get('risk')}]"
    if t == "decision":
        return f"{'approved' if d.get('approved') else 'denied'} by {d.get('by')}"
    if t == "tool_result":
        return f"{d.get('name')}: {'error' if d.get('is_error') else 'ok'}"
    if t in ("run_started", "user"):
        return str(d.get("task") or d.get("content", ""))[:60]
    if t == "run_finished":
        return f"{d.get('outcome')}: {str(d.get('message', ''))[:50]}"
    return json.dumps(d)[:60]


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
    from luminaguard.sandbox import open_sandbox
    from luminaguard.sandbox.network import NetworkMode

    cmd = _command(args)
    workspace = _workspace(args.workspace)
    settings = load_settings(workspace)
    if args.sandbox_command == "preview":
        return _preview(cmd, workspace, settings, args)
    network = NetworkMode.parse(args.network or settings.sandbox.network)
    sandbox_settings = settings.sandbox.model_copy(update={"network": str(network), "pool_size": 0})
    sandbox = open_sandbox(
        args.backend or settings.sandbox.backend,
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
        print(
            f"luminaguard: network {attempt['method']} {attempt['host']}:{attempt['port']} {verdict}",
            file=sys.stderr,
        )
    if result.timed_out:
        print(f"luminaguard: command timed out after {result.duration_s:.1f} s", file=sys.stderr)
    return result.exit_code


def _preview(cmd: list[str], workspace: Path, settings: Any, args: argparse.Namespace) -> int:
    import asyncio

    from luminaguard.policy.effects import classify_effects
    from luminaguard.sandbox import open_sandbox
    from luminaguard.ui.terminal import render_preview

    sandbox = open_sandbox(settings.sandbox.backend, workspace, settings.sandbox)
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


def cmd_metrics(args: argparse.Namespace) -> int:
    from luminaguard.config import load_settings
    from luminaguard.llm.metrics import ProviderMetrics
    from luminaguard.metrics import json_snapshot, prometheus_text

    settings = load_settings(Path.cwd())
    since, until = _when(args.since, "--since"), _when(args.until, "--until")
    store = ProviderMetrics(settings.data_dir / "metrics.db")
    rows = store.rows(since, until)
    store.close()
    print(
        prometheus_text(rows) if args.format == "prometheus" else json_snapshot(rows, since, until),
        end="" if args.format == "prometheus" else "\n",
    )
    return EXIT_OK


def _when(text: str | None, flag: str) -> float | None:
    import re
    import time

    if text is None:
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text.strip())
    if m:
        return (
            time.time() - float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
        )
    try:
        return float(text)
    except ValueError:
        raise UsageError(
            f"{flag} takes a duration like 15m, 2h or 7d, or a Unix time; got {text!r}"
        ) from None


def cmd_pool(args: argparse.Namespace) -> int:
    import asyncio

    from luminaguard.config import load_settings
    from luminaguard.sandbox.bench import pool_bench
    from luminaguard.stats import series_line

    if args.backend != "bwrap":
        raise UsageError(f"unknown sandbox backend {args.backend!r}; known backends: bwrap")
    if args.n < 1:
        raise UsageError("--n must be at least 1")
    settings = load_settings(Path.cwd())
    result = asyncio.run(pool_bench(settings.sandbox, args.n))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for name in ("baseline_subprocess", "cold", "warm"):
            print(series_line(name, result[name]))
    return EXIT_OK


def cmd_classify(args: argparse.Namespace) -> int:
    from luminaguard.config import load_settings
    from luminaguard.policy.classify import classify_action
    from luminaguard.sandbox.workspace import Workspace

    workspace = _workspace(args.workspace)
    settings = load_settings(workspace)
    ws = Workspace(workspace)
    trusted = {name for name, server in settings.mcp.servers.items() if server.trusted}
    bad = 0
    for n, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            if not isinstance(item, dict) or not isinstance(item.get("tool"), str):
                raise ValueError("each line must be an object with a string `tool`")
            tool, call_args = item["tool"], item.get("args", {})
            if not isinstance(call_args, dict):
                raise ValueError("`args` must be an object")
            annotations = item.get("annotations")
            server = tool[4:].split("/", 1)[0] if tool.startswith("mcp:") else None
            a = classify_action(
                tool, call_args, ws=ws, annotations=annotations, trusted=server in trusted
            )
            out = a.to_dict()
        except ValueError as exc:
            bad += 1
            out = {"risk": "red", "reasons": [f"invalid-input: line {n}: {exc}"], "error": str(exc)}
        print(json.dumps(out, ensure_ascii=False), flush=True)
    if bad:
        print(
            f"luminaguard: error: {bad} input line(s) could not be read (reported as red)",
            file=sys.stderr,
        )
    return EXIT_ERROR if bad else EXIT_OK


def cmd_approvals(args: argparse.Namespace) -> int:
    from luminaguard.config import load_settings
    from luminaguard.policy.inbox import InboxStore
    from luminaguard.policy.permissions import local_user

    settings = load_settings(Path.cwd())
    store = InboxStore(settings.data_dir / "inbox.db")
    who = args.as_ or local_user()
    if args.approvals_command == "list":
        items = store.pending()
        if args.json:
            print(json.dumps([i.to_dict() for i in items], indent=2, ensure_ascii=False))
        elif not items:
            print("no pending approvals")
        for i in items if not args.json else []:
            print(
                f"{i.id:>5}  {i.card.risk.label:<7} {i.agent:<14} {i.card.tool:<12} {i.task[:50]}"
            )
        asked = len(store.questions())
        if asked and not args.json:
            print(f"{asked} question(s) from MCP servers waiting: luminaguard approvals questions")
        return EXIT_OK
    if args.approvals_command == "questions":
        questions = store.questions()
        if args.json:
            print(json.dumps([q.to_dict() for q in questions], indent=2, ensure_ascii=False))
        elif not questions:
            print("no questions waiting")
        for q in questions if not args.json else []:
            print(f"{q.id:>5}  {q.agent:<14} {q.server:<12} {q.message}")
            for name, prop in (q.schema.get("properties") or {}).items():
                required = name in (q.schema.get("required") or [])
                choices = f" one of {', '.join(map(str, prop['enum']))}" if prop.get("enum") else ""
                default = f" [default {prop['default']}]" if "default" in prop else ""
                print(
                    f"       {name}: {prop.get('type', 'string')}{choices}{default}"
                    f"{' (required)' if required else ''}  {prop.get('description', '')}".rstrip()
                )
        return EXIT_OK
    if args.approvals_command == "answer":
        from luminaguard.policy.inbox import answer_content

        question = store.question(args.id)
        if question is None or question.status != "pending":
            raise UsageError(
                f"no question {args.id} waiting (see `luminaguard approvals questions`)"
            )
        content = None
        action = "decline" if args.decline else "cancel" if args.cancel else "accept"
        if action == "accept":
            pairs = {}
            for field in args.fields:
                name, sep, value = field.partition("=")
                if not sep:
                    raise UsageError(f"{field!r} is not NAME=VALUE")
                pairs[name] = value
            try:
                content = answer_content(question.schema, pairs)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
        elif args.fields:
            raise UsageError(f"--{action} takes no fields")
        store.answer(args.id, action=action, content=content, by=who)
        done = {"accept": "accepted", "decline": "declined", "cancel": "cancelled"}[action]
        print(f"{args.id}: {done} by {who}")
        return EXIT_OK
    if args.approvals_command == "decide":
        targets = store.related(args.id) if args.step else [store.get(args.id)]
        targets = [t for t in targets if t is not None and t.status == "pending"]
        if not targets:
            raise UsageError(f"no pending approval {args.id} (see `luminaguard approvals list`)")
        if args.grant_hours is not None and args.verdict != "approve":
            raise UsageError("--grant-hours goes with approve")
        for t in targets:
            store.decide(
                t.id,
                approved=args.verdict == "approve",
                by=who,
                reason=args.reason,
                grant_hours=args.grant_hours,
            )
            print(f"{t.id}: {args.verdict}d by {who}")
        return EXIT_OK
    if not sys.stdout.isatty():
        raise UsageError(
            "the approval inbox needs a terminal; use `luminaguard approvals list` or `decide` from scripts"
        )
    from luminaguard.ui.inbox_app import run_inbox

    run_inbox(store, who)
    return EXIT_OK


def cmd_swarm(args: argparse.Namespace) -> int:
    from luminaguard.swarm import worktree
    from luminaguard.swarm.queue import Queue

    repo = args.repo.resolve()
    worktree.require_repo(repo)
    queue = Queue(repo / ".luminaguard" / "swarm.db")
    if args.swarm_command == "add":
        if args.count < 1:
            raise UsageError("--count must be at least 1")
        playbook = None
        if args.playbook:
            if not args.playbook.is_file():
                raise UsageError(f"playbook {args.playbook} does not exist")
            playbook = str(args.playbook.resolve())
        if args.model:
            from luminaguard.llm.registry import split_spec

            split_spec(args.model)
        if args.max_attempts < 1:
            raise UsageError("--max-attempts must be at least 1")
        queue.max_attempts = args.max_attempts
        ids = queue.add(
            args.task, playbook=playbook, model=args.model, priority=args.priority, count=args.count
        )
        print("\n".join(ids))
        return EXIT_OK
    if args.swarm_command == "status":
        status = _swarm_status(queue)
        if args.json:
            print(json.dumps(status, indent=2))
            return EXIT_OK
        c = status["items"]
        print(
            f"items: {c['queued']} queued, {c['running']} running, {c['done']} done, {c['failed']} failed"
        )
        for a in status["agents"]:
            pending = (
                f", {a['pending_approvals']} approval(s) waiting" if a["pending_approvals"] else ""
            )
            print(
                f"  {a['id']:<10} pid {a['pid']:<7} {a['state']:<9} item {a['item'] or '-':<9} beat {a['heartbeat_age_s']:>6.1f} s ago  {a['last_action'] or ''}{pending}"
            )
        for i in status["items_detail"]:
            print(
                f"  {i['id']}  {i['state']:<8} attempts {i['attempts']}  {i['branch']}  {i['task'][:50]}"
            )
        return EXIT_OK
    if args.agents < 1:
        raise UsageError("--agents must be at least 1")
    from luminaguard.swarm.coordinator import Coordinator

    coordinator = Coordinator(
        repo,
        args.agents,
        until_empty=args.until_empty,
        policy=args.policy,
        approver=args.approver,
        lease_s=args.lease,
        hung_after_s=args.hung_after,
        keep_worktrees=args.keep_worktrees,
    )
    return coordinator.run()


def _swarm_status(queue: Any) -> dict[str, Any]:
    from luminaguard.config import load_settings
    from luminaguard.policy.inbox import InboxStore

    inbox = InboxStore(load_settings(Path.cwd()).data_dir / "inbox.db")
    waiting: dict[str, int] = {}
    for p in inbox.pending():
        waiting[p.run_id] = waiting.get(p.run_id, 0) + 1
    agents = [
        {**a, "pending_approvals": waiting.get(a["run_id"] or "", 0)}
        for a in queue.agents()
        if a["state"] not in ("stopped", "gone", "replaced")
    ]
    details = [
        {k: i[k] for k in ("id", "state", "attempts", "completions", "branch", "task", "reasons")}
        for i in queue.details()
    ]
    return {"items": queue.counts(), "items_detail": details, "agents": agents}


def cmd_mcp(args: argparse.Namespace) -> int:
    import asyncio

    from luminaguard.config import load_settings
    from luminaguard.mcp.client import McpServerHandle
    from luminaguard.policy.classify import classify_mcp

    workspace = _workspace(args.workspace)
    settings = load_settings(workspace)
    servers = settings.mcp.servers
    if args.mcp_command == "list":
        rows = [
            {
                "name": name,
                "transport": "http" if cfg.url else "stdio",
                "target": cfg.url or " ".join([cfg.command or "", *cfg.args]),
                "sandboxed": bool(cfg.command) and cfg.sandbox,
                "network": cfg.network if cfg.command else None,
                "trusted": cfg.trusted,
            }
            for name, cfg in servers.items()
        ]
        if args.json:
            print(json.dumps(rows, indent=2))
        elif not rows:
            print("no MCP servers configured ([mcp.servers.NAME] in luminaguard.toml)")
        for r in rows if not args.json else []:
            mode = (
                "sandboxed"
                if r["sandboxed"]
                else ("http" if r["transport"] == "http" else "ON THE HOST, NOT SANDBOXED")
            )
            if r["sandboxed"] and r["network"] != "none":
                mode += f", net {r['network']}"
            print(
                f"{r['name']:<16} {mode:<26} {'trusted' if r['trusted'] else 'untrusted':<9} {r['target']}"
            )
        return EXIT_OK
    if args.server not in servers:
        known = ", ".join(sorted(servers)) or "none configured"
        raise UsageError(f"no MCP server {args.server!r} in the config; known servers: {known}")
    cfg = servers[args.server]
    authorization = None
    if cfg.url and (args.mcp_command == "login" or sys.stdin.isatty()):
        # An HTTP server that asks for authorization: the person opens the address.
        from luminaguard.mcp.oauth import LoopbackAuthorization

        authorization = LoopbackAuthorization(
            cfg.oauth.redirect_port,
            open_browser=not (args.mcp_command == "login" and args.no_browser),
        )
    handle = McpServerHandle(
        args.server,
        cfg,
        workspace=workspace,
        data_dir=settings.data_dir,
        sandbox=settings.sandbox,
        cache_dir=settings.mcp.cache_dir,
        authorization=authorization,
    )
    if args.mcp_command in ("login", "logout"):
        return _mcp_login(handle, args)
    if args.mcp_command in ("resources", "prompts", "read"):
        return _mcp_browse(handle, args)
    if args.mcp_command == "tools":

        async def tools() -> list[Any]:
            try:
                return await handle.list_tools()
            finally:
                await handle.close()

        listed = asyncio.run(tools())
        tool_rows: list[dict[str, Any]] = []
        for t in listed:
            annotations = (
                t.annotations.model_dump(by_alias=True, exclude_none=True)
                if t.annotations
                else None
            )
            level = classify_mcp(
                f"mcp:{args.server}/{t.name}", annotations if cfg.trusted else None
            ).risk.label
            tool_rows.append(
                {
                    "name": f"mcp:{args.server}/{t.name}",
                    "description": t.description,
                    "annotations": annotations,
                    "risk": level,
                    "input_schema": t.input_schema,
                }
            )
        if args.json:
            print(json.dumps(tool_rows, indent=2, ensure_ascii=False))
        for row in tool_rows if not args.json else []:
            first = (row["description"] or "").splitlines()[0][:60] if row["description"] else ""
            print(f"{row['risk']:<7} {row['name']:<40} {first}")
        return EXIT_OK
    try:
        arguments = json.loads(args.arguments)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"the tool arguments are not valid JSON: {exc.msg} at position {exc.pos}"
        ) from None
    if not isinstance(arguments, dict):
        raise UsageError("the tool arguments must be a JSON object")
    return _mcp_call(handle, args, arguments, settings)


def _mcp_login(handle: Any, args: argparse.Namespace) -> int:
    import asyncio

    from luminaguard.mcp.oauth import FileTokenStorage, token_path

    cfg = handle.cfg
    if not cfg.url:
        raise UsageError(f"{args.server} is a stdio server: only HTTP servers use OAuth")
    path = token_path(handle.data_dir, args.server)
    had = FileTokenStorage(path, cfg.url).forget()
    if args.mcp_command == "logout":
        print(f"{args.server}: {'stored tokens removed' if had else 'no stored tokens'}")
        return EXIT_OK
    if not cfg.oauth.enabled:
        raise UsageError(f"mcp.servers.{args.server}.oauth.enabled is false")

    async def login() -> int:
        try:
            return len(await handle.list_tools())
        finally:
            await handle.close()

    count = asyncio.run(login())
    stored = "tokens stored in " + str(path) if path.exists() else "the server asked for none"
    print(f"{args.server}: connected, {count} tools; {stored}")
    return EXIT_OK


def _mcp_browse(handle: Any, args: argparse.Namespace) -> int:
    import asyncio

    async def browse() -> Any:
        try:
            if args.mcp_command == "resources":
                return await handle.list_resources()
            if args.mcp_command == "prompts":
                return await handle.list_prompts()
            return await handle.read_resource(args.uri)
        finally:
            await handle.close()

    result = asyncio.run(browse())
    if args.mcp_command == "read":
        print(handle.render_contents(result))
        return EXIT_OK
    rows = [item.model_dump(mode="json", by_alias=True, exclude_none=True) for item in result]
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    for row in rows if not args.json else []:
        about = (
            (row.get("description") or "").splitlines()[0][:60] if row.get("description") else ""
        )
        print(f"{row.get('uri') or row.get('name'):<50} {about}")
    return EXIT_OK


def _mcp_call(
    handle: Any, args: argparse.Namespace, arguments: dict[str, Any], settings: Any
) -> int:
    import asyncio

    from luminaguard.audit.run import RunRecorder
    from luminaguard.errors import ToolError

    recorder = RunRecorder(
        settings.data_dir,
        task=f"mcp call {args.server}/{args.tool}",
        workspace=handle.workspace,
        model="none",
    )
    recorder.record(
        "tool_call",
        {
            "call": {"name": f"mcp:{args.server}/{args.tool}", "arguments": arguments},
            "by": "the user, directly (luminaguard mcp call)",
        },
    )

    async def call() -> tuple[str, bool, dict[str, Any]]:
        try:
            result = await handle.call_tool(args.tool, arguments)
            return handle.render(result)  # type: ignore[no-any-return]
        finally:
            await handle.close()

    try:
        text, is_error, data = asyncio.run(call())
    except (ToolError, LuminaGuardError) as exc:
        recorder.record(
            "tool_result",
            {"name": f"mcp:{args.server}/{args.tool}", "is_error": True, "output": str(exc)},
        )
        recorder.finish("error", {"message": str(exc)})
        raise
    recorder.record(
        "tool_result",
        {
            "name": f"mcp:{args.server}/{args.tool}",
            "is_error": is_error,
            "output": text,
            "data": data,
        },
    )
    recorder.finish(
        "finished" if not is_error else "error",
        {"message": "tool returned an error" if is_error else "ok"},
    )
    if args.json:
        print(
            json.dumps({"is_error": is_error, "text": text, **data}, indent=2, ensure_ascii=False)
        )
    else:
        print(text)
    return EXIT_ERROR if is_error else EXIT_OK


COMMANDS = {
    "doctor": cmd_doctor,
    "run": cmd_run,
    "demo": cmd_demo,
    "audit": cmd_audit,
    "sandbox": cmd_sandbox,
    "pool": cmd_pool,
    "classify": cmd_classify,
    "metrics": cmd_metrics,
    "swarm": cmd_swarm,
    "mcp": cmd_mcp,
    "approvals": cmd_approvals,
}
