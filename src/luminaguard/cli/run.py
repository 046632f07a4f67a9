"""`luminaguard run` and `luminaguard demo`: an agent on a task."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from luminaguard.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    OUTCOME_EXIT,
    say,
    workspace_arg,
    workspace_dir,
)
from luminaguard.errors import UsageError


def add_run(sub: Any) -> None:
    """run: an agent on a task (or --resume a run)."""
    run = sub.add_parser("run", help="run an agent on a task")
    run.add_argument("task", nargs="?", help="what the agent should do")
    run.add_argument(
        "--resume", metavar="RUN_ID", help="continue an interrupted run from its journal"
    )
    _agent_arguments(run, steps="model turns before the run is stopped")
    run.add_argument(
        "--json",
        action="store_true",
        help="events as JSON lines on stdout, for scripts (the prompt, if any, uses stderr)",
    )
    run.set_defaults(handler=cmd_run)


def add_chat(sub: Any) -> None:
    """chat: an interactive session, follow-up messages in one run."""
    chat = sub.add_parser(
        "chat", help="an interactive session: follow-up messages in one run and journal"
    )
    _agent_arguments(chat, steps="model turns per message before that turn is stopped")
    chat.set_defaults(handler=cmd_chat)


def _agent_arguments(parser: Any, *, steps: str) -> None:
    workspace_arg(parser)
    parser.add_argument("--model", help="PROVIDER/MODEL, e.g. scripted/playbook.json")
    parser.add_argument(
        "--playbook", type=Path, help="replay this playbook (same as --model scripted/PATH)"
    )
    parser.add_argument("--policy", type=Path, help="policy file (TOML)")
    parser.add_argument("--sandbox", help="sandbox backend (default from config: bwrap)")
    parser.add_argument("--max-steps", type=int, help=steps)
    parser.add_argument(
        "--approver",
        choices=["prompt", "inbox", "none"],
        help="who answers approvals: the terminal prompt (default with a terminal), "
        "the shared approval inbox (`luminaguard approvals`), or nobody (deny)",
    )
    parser.add_argument(
        "--as", dest="as_", metavar="NAME", help="the principal approving at the prompt"
    )


def add_demo(sub: Any) -> None:
    """demo: the bundled task, offline and unattended."""
    demo = sub.add_parser("demo", help="the bundled demo, offline and unattended")
    demo.add_argument(
        "--workspace", type=Path, help="an empty or new directory (default: a new temp dir)"
    )
    demo.add_argument(
        "--sandbox", default="bwrap", help="sandbox backend: bwrap, gvisor or microvm"
    )
    demo.set_defaults(handler=cmd_demo)


def cmd_run(args: argparse.Namespace) -> int:
    from luminaguard.config import load_settings

    if args.resume and args.task:
        raise UsageError("give a TASK or --resume RUN_ID, not both")
    if not args.resume and not args.task:
        raise UsageError('no task: luminaguard run "TASK" (or --resume RUN_ID)')
    workspace = workspace_dir(args.workspace)
    settings = load_settings(workspace)
    spec = _model_spec(args, settings, needed=not args.resume)
    # A resumed run keeps what it was started with, unless told otherwise.
    was: dict[str, Any] = {}
    if args.resume:
        from luminaguard.audit.run import started_with

        was = started_with(settings.data_dir, args.resume)
    max_steps = (
        args.max_steps
        if args.max_steps is not None
        else int(was.get("max_steps") or settings.agent.max_steps)
    )
    if max_steps < 1:
        raise UsageError("--max-steps must be at least 1")
    policy = args.policy or (Path(was["policy"]) if was.get("policy") else settings.policy)
    return _run_agent(
        args.task or "",
        settings=settings,
        workspace=workspace,
        spec=spec,
        policy_path=policy,
        backend=args.sandbox or was.get("backend") or settings.sandbox.backend,
        max_steps=max_steps,
        approver_name=args.approver or was.get("approver"),
        principal=args.as_,
        resume=args.resume,
        as_json=args.json,
    )


def _model_spec(args: argparse.Namespace, settings: Any, *, needed: bool = True) -> str | None:
    if args.model and args.playbook:
        raise UsageError("give --model or --playbook, not both")
    spec: str | None = (
        f"scripted/{args.playbook}" if args.playbook else args.model or settings.model
    )
    if not spec and not settings.router.groups and needed:
        raise UsageError(
            "no model: pass --model PROVIDER/MODEL or --playbook FILE, or set model (or [router.groups]) in luminaguard.toml"
        )
    return spec


def cmd_chat(args: argparse.Namespace) -> int:
    import asyncio

    from luminaguard.agent.outcomes import RunEnded
    from luminaguard.config import load_settings
    from luminaguard.policy.approver import on_daemon_thread

    workspace = workspace_dir(args.workspace)
    settings = load_settings(workspace)
    spec = _model_spec(args, settings)
    max_steps = args.max_steps if args.max_steps is not None else settings.agent.max_steps
    if max_steps < 1:
        raise UsageError("--max-steps must be at least 1")
    interactive = sys.stdin.isatty()
    if interactive:
        print("LuminaGuard chat: each message is a turn of one run; Ctrl-D or /exit ends it.")
    first = _read_message(interactive)
    if first is None:
        return EXIT_OK
    session = _session(
        first,
        settings=settings,
        workspace=workspace,
        spec=spec,
        policy_path=args.policy or settings.policy,
        backend=args.sandbox or settings.sandbox.backend,
        max_steps=max_steps,
        approver_name=args.approver,
        principal=args.as_,
    )
    print(
        f"▶ chat {session.run_id} in {session.workspace}  (model {session.spec or 'router'}, policy: {session.policy.source})"
    )

    def told(outcome: RunEnded) -> None:
        if outcome.outcome != "finished":  # a finished turn's answer is on the screen
            say(f"■ this turn ended: {outcome.outcome}: {outcome.message}")

    async def ask() -> str | None:
        # Not the executor: a read still waiting when the chat ends (Ctrl-C)
        # must not hold the process open.
        return await on_daemon_thread(lambda: _read_message(interactive))

    try:
        result = asyncio.run(session.chat(ask, told=told))
    except KeyboardInterrupt:
        print(
            f"luminaguard: chat {session.run_id} interrupted; its journal holds every step so far",
            file=sys.stderr,
        )
        return 130
    finally:
        session.close()
    return _summary(result)


def _read_message(interactive: bool) -> str | None:
    """The person's next message; None at the end of input or on /exit."""
    while True:
        try:
            line = input("you› ") if interactive else sys.stdin.readline()
        except EOFError:
            return None
        if not interactive and not line:
            return None
        text = line.strip()
        if text in ("/exit", "/quit"):
            return None
        if text:
            return text


def _run_agent(task: str, *, as_json: bool = False, **how: Any) -> int:
    """Run ``task`` to its end on the terminal (or as JSON lines); ``how`` is
    the session's make-up (``_session``)."""
    import asyncio

    from luminaguard.ui.terminal import JsonReport

    json_report = JsonReport() if as_json else None
    session = _session(task, json_report=json_report, **how)
    resume = how.get("resume")
    verb = "resume" if resume else "run"
    if json_report is not None:
        json_report.emit(
            {
                "event": "start",
                "run_id": session.run_id,
                "resume": bool(resume),
                "workspace": str(session.workspace),
                "model": session.spec,
                "policy": session.policy.source,
            }
        )
    else:
        print(
            f"▶ {verb} {session.run_id} in {session.workspace}  (model {session.spec or 'router'}, policy: {session.policy.source})"
        )
    try:
        result = asyncio.run(session.run())
    except KeyboardInterrupt:
        print(
            f"luminaguard: interrupted; the journal holds every step so far: "
            f"resume with `luminaguard run --resume {session.run_id}`",
            file=sys.stderr,
        )
        return 130
    finally:
        session.close()
    if json_report is not None:
        json_report.emit(
            {
                "event": "summary",
                "run_id": result.run_id,
                "outcome": result.outcome,
                "message": result.message,
                "steps": result.steps,
                "input_tokens": result.usage.input_tokens,
                "output_tokens": result.usage.output_tokens,
                "cost_usd": round(result.cost_usd, 6),
                "journal": str(result.journal),
            }
        )
        return OUTCOME_EXIT.get(result.outcome, EXIT_ERROR)
    return _summary(result)


def _summary(result: Any) -> int:
    """The end of a run or a chat on the terminal; its exit code."""
    try:
        say(
            f"\n■ {result.outcome}: {result.message}"
            if result.outcome != "finished"
            else "\n■ finished"
        )
        print(
            f"  steps {result.steps}, tokens {result.usage.input_tokens} in / {result.usage.output_tokens} out, cost ${result.cost_usd:.4f}"
        )
        print(f"  journal {result.journal}")
        print(f"  verify with: luminaguard audit verify {result.run_id}")
        sys.stdout.flush()
    except BrokenPipeError:
        from luminaguard.ui.terminal import silence

        silence(sys.stdout)  # nobody reads the summary: the run's outcome still counts
    return OUTCOME_EXIT.get(result.outcome, EXIT_ERROR)


def _session(
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
    json_report: Any = None,
) -> Any:
    """The session of a run or a chat: its policy, approver and report."""
    from luminaguard.agent.session import Session, SessionOptions
    from luminaguard.policy.approver import make_approver
    from luminaguard.policy.permissions import acting_principal
    from luminaguard.policy.policyfile import load_policy
    from luminaguard.ui.terminal import TerminalReport, render_card

    policy = load_policy(policy_path)
    principal = acting_principal(principal, policy.principals)
    if policy.principals and principal not in policy.principals and approver_name != "inbox":
        print(
            f"luminaguard: note: {principal} is not a principal of the policy, so an approval "
            f"given at the prompt counts as a denial (bind this user with users = "
            f'["{principal}"] under a [principals.NAME])',
            file=sys.stderr,
        )
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
            render=render_card,
            out=sys.stderr if json_report is not None else None,
        ),
        report=json_report or TerminalReport(),
        details={
            "policy": str(policy_path.resolve()) if policy_path else None,
            "approver": approver_name,
            "backend": backend,
            "max_steps": max_steps,
        },
    )
    return Session(settings, options, task=task, resume=resume)


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
            backend=args.sandbox,
            max_steps=20,
            approver_name="none",
        )
    print(f"  demo took {time.monotonic() - started:.1f} s; the fixed project is in {workspace}")
    return code
