"""`luminaguard fleet dev|worker|submit|status|approve|deny`: agent runs on Temporal."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from pathlib import Path
from typing import Any

from luminaguard.cli.common import EXIT_OK, Parser, say, workspace_dir
from luminaguard.errors import UsageError

BACKENDS = ("bwrap", "gvisor", "microvm")


def add_fleet(sub: Any) -> None:
    """fleet: runs as Temporal workflows, worked by any number of workers."""
    fleet = sub.add_parser("fleet", help="agent runs on Temporal, worked by workers anywhere")
    fsub = fleet.add_subparsers(
        dest="fleet_command", metavar="ACTION", required=True, parser_class=Parser
    )
    dev = fsub.add_parser("dev", help="a Temporal dev server in the foreground (SQLite, WAL)")
    dev.add_argument("--port", type=int, default=7233, help="its gRPC port (default: 7233)")
    dev.add_argument("--ui-port", type=int, help="serve Temporal's web UI on this port")
    dev.add_argument(
        "--db", type=Path, help="its SQLite file (default: DATA_DIR/fleet/temporal.db)"
    )
    dev.set_defaults(handler=cmd_dev)

    worker = fsub.add_parser("worker", help="work the fleet's runs, N steps at a time")
    _address(worker)
    worker.add_argument("--slots", type=int, default=2, help="steps at a time (default: 2)")
    worker.add_argument("--backend", choices=BACKENDS, help="sandbox backend (default: settings')")
    worker.set_defaults(handler=cmd_worker)

    submit = fsub.add_parser("submit", help="start a run; prints its id last")
    _address(submit)
    submit.add_argument("--workspace", type=Path, required=True)
    model = submit.add_mutually_exclusive_group(required=True)
    model.add_argument("--playbook", type=Path, help="a scripted playbook")
    model.add_argument("--model", help="PROVIDER/MODEL")
    submit.add_argument("--policy", type=Path, help="the policy every step decides by")
    submit.add_argument("--max-steps", type=int, default=0)
    submit.add_argument("task")
    submit.set_defaults(handler=cmd_submit)

    status = fsub.add_parser("status", help="the runs (or one) and what waits")
    _address(status)
    status.add_argument("run", nargs="?")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=cmd_status)

    inbox = fsub.add_parser(
        "inbox", help="show the fleet's waiting cards in this machine's approval inbox"
    )
    _address(inbox)
    inbox.add_argument("--once", action="store_true", help="one pass, then exit")
    inbox.set_defaults(handler=cmd_inbox)

    for name, approved in (("approve", True), ("deny", False)):
        p = fsub.add_parser(name, help=f"{name} the call waiting in a run")
        _address(p)
        p.add_argument("run")
        p.add_argument("call")
        p.add_argument("--as", dest="as_", metavar="NAME", help="who is deciding")
        p.add_argument("--reason", default="")
        p.add_argument("--card", help="the card hash decided on (refused if the card changed)")
        if approved:
            p.add_argument(
                "--grant-hours",
                type=float,
                default=0.0,
                metavar="H",
                help="also grant calls like this one for H hours",
            )
        p.set_defaults(handler=cmd_decide, approved=approved)


def _address(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", help="HOST:PORT of Temporal (default: settings' fleet.address)")


def _settings(workspace: Path | None = None) -> Any:
    """The settings, once the fleet's SDK is known to be here (every command starts here)."""
    import importlib.util

    from luminaguard.config import load_settings

    if importlib.util.find_spec("temporalio") is None:
        raise UsageError("the fleet needs the Temporal SDK: pip install 'luminaguard[fleet]'")

    return load_settings(workspace or Path.cwd())


def _client(args: argparse.Namespace, settings: Any) -> Any:
    from luminaguard.fleet.client import connect

    return connect(settings.fleet, args.address)


def cmd_dev(args: argparse.Namespace) -> int:
    settings = _settings()
    from luminaguard.fleet.client import dev_server_command
    from luminaguard.store import private_dir

    db = args.db or private_dir(settings.data_dir / "fleet") / "temporal.db"
    cmd = dev_server_command(db, args.port, args.ui_port)
    ui = f", its web UI on http://127.0.0.1:{args.ui_port}" if args.ui_port else ""
    print(f"Temporal dev server on 127.0.0.1:{args.port} ({db}){ui}", flush=True)
    os.execv(cmd[0], cmd)


def cmd_worker(args: argparse.Namespace) -> int:
    import asyncio

    settings = _settings()
    from luminaguard.fleet.client import work

    if args.slots < 1:
        raise UsageError("--slots must be at least 1")

    async def main() -> None:
        client = await _client(args, settings)
        print(f"fleet worker: {args.slots} slots on {settings.fleet.task_queue}", flush=True)
        await work(client, settings.fleet.task_queue, args.slots, args.backend)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    return EXIT_OK


def cmd_submit(args: argparse.Namespace) -> int:
    import asyncio

    from luminaguard.audit.run import new_run_id
    from luminaguard.fleet.data import RunInput
    from luminaguard.policy.policyfile import load_policy

    workspace = workspace_dir(args.workspace)
    settings = _settings(workspace)
    if args.playbook is not None:
        if not args.playbook.is_file():
            raise UsageError(f"playbook {args.playbook} does not exist")
        spec = f"scripted/{args.playbook.resolve()}"
    else:
        spec = args.model
    policy_path = args.policy or settings.policy
    text = ""
    if policy_path is not None:
        load_policy(policy_path)  # one clear error now, not in every worker
        text = Path(policy_path).read_text(encoding="utf-8")
    run = RunInput(
        run_id=new_run_id(),
        task=args.task,
        workspace=str(workspace),
        spec=spec,
        policy_toml=text,
        policy_source=str(policy_path) if policy_path else "",
        max_steps=args.max_steps,
    )

    async def main() -> str:
        from luminaguard.fleet.client import submit

        client = await _client(args, settings)
        return await submit(client, run, settings.fleet.task_queue)

    print(asyncio.run(main()))
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    import asyncio

    settings = _settings()
    from luminaguard.fleet.client import status, statuses

    async def main() -> list[dict[str, Any]]:
        client = await _client(args, settings)
        return [await status(client, args.run)] if args.run else await statuses(client)

    runs = asyncio.run(main())
    if args.json:
        print(json.dumps({"runs": runs}))
        return EXIT_OK
    if not runs:
        print("no fleet runs")
    for r in runs:
        say(
            f"{r['id']}  {r['status']}  steps {r.get('steps', 0)}  {r.get('message') or ''}".rstrip()
        )
        waiting = r.get("waiting")
        if waiting:
            say(f"  waits: call {waiting['call_id']} ({waiting['tool']}, {waiting['risk']})")
            say("  " + waiting["summary"].replace("\n", "\n  "))
            say(f"  decide: luminaguard fleet approve|deny {r['id']} {waiting['call_id']}")
    return EXIT_OK


def cmd_inbox(args: argparse.Namespace) -> int:
    """Keep the fleet's waiting cards in the local inbox, and carry the
    decisions made there back to their runs (`serve` does it too, with
    ``fleet.inbox``)."""
    import asyncio

    settings = _settings()
    from luminaguard.fleet.bridge import InboxBridge, bridge
    from luminaguard.policy.inbox import InboxStore

    store = InboxStore(settings.data_dir / "inbox.db")

    async def main() -> None:
        client = await _client(args, settings)
        if args.once:
            for line in await InboxBridge(client, store).sync():
                say(line)
            return
        say(f"fleet inbox: cards of {settings.fleet.address} in {store.path}; Ctrl-C stops")
        await bridge(client, store, say)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    return EXIT_OK


def cmd_decide(args: argparse.Namespace) -> int:
    import asyncio

    settings = _settings()
    from luminaguard.fleet.client import decide, policy_of
    from luminaguard.fleet.data import Answer
    from luminaguard.policy.permissions import acting_principal
    from luminaguard.policy.policyfile import parse_policy

    if getattr(args, "grant_hours", 0.0) < 0:
        raise UsageError("--grant-hours must be positive")

    async def main() -> str:
        client = await _client(args, settings)
        text = await policy_of(client, args.run)
        principals = parse_policy(text, "the run's policy").principals if text else {}
        who = acting_principal(args.as_, principals)
        answer = Answer(
            call_id=args.call,
            approved=args.approved,
            by=f"{who} (fleet)",
            reason=args.reason or ("approved" if args.approved else "denied"),
            principal=who,
            card_hash=args.card or "",
            grant_hours=getattr(args, "grant_hours", 0.0),
        )
        return await decide(client, args.run, answer)

    card = asyncio.run(main())
    verb = "approved" if args.approved else "denied"
    say(f"{verb} call {args.call} of run {args.run} (card {card[:12]})")
    return EXIT_OK
