"""`luminaguard swarm add|run|status|remove|retry|clear`: many agents on a backlog."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from luminaguard.cli.common import (
    EXIT_OK,
    Parser,
)
from luminaguard.errors import UsageError


def add_swarm(sub: Any) -> None:
    """swarm: agents working a backlog in git worktrees."""
    swarm = sub.add_parser(
        "swarm", help="many agents working a backlog, each in its own git worktree"
    )
    wsub = swarm.add_subparsers(
        dest="swarm_command", metavar="ACTION", required=True, parser_class=Parser
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
    wremove = wsub.add_parser("remove", help="drop items that are not running")
    wretry = wsub.add_parser("retry", help="put failed items back in the queue, attempts reset")
    for p in (wremove, wretry):
        p.add_argument("--repo", type=Path, default=Path("."))
        p.add_argument("ids", nargs="+", metavar="ID", help="item ids (from `swarm status`)")
    wclear = wsub.add_parser("clear", help="drop finished items (done and failed)")
    wclear.add_argument("--repo", type=Path, default=Path("."))
    wclear.add_argument(
        "--state",
        choices=["done", "failed", "queued"],
        action="append",
        help="only items in this state (repeatable; default: done and failed)",
    )
    wstat = wsub.add_parser("status", help="items and agents")
    wstat.add_argument("--repo", type=Path, default=Path("."))
    wstat.add_argument("--json", action="store_true")
    swarm.set_defaults(handler=cmd_swarm)


def cmd_swarm(args: argparse.Namespace) -> int:
    from luminaguard.swarm import status as swarms
    from luminaguard.swarm import worktree
    from luminaguard.swarm.queue import Queue, queue_path

    repo = args.repo.resolve()
    worktree.require_repo(repo)
    queue = Queue(queue_path(repo))
    if args.swarm_command in ("add", "run"):
        from luminaguard.config import load_settings

        swarms.remember(load_settings(repo).data_dir, repo)  # for the service's swarm page
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
    if args.swarm_command in ("remove", "retry"):
        return _remove_or_retry(queue, args.swarm_command, args.ids)
    if args.swarm_command == "clear":
        gone = queue.clear(tuple(args.state or ("done", "failed")))
        print(f"cleared {gone} item(s)")
        return EXIT_OK
    if args.swarm_command == "status":
        from luminaguard.config import load_settings

        status = swarms.status(queue, load_settings(Path.cwd()).data_dir)
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
    if args.policy is not None:
        from luminaguard.policy.policyfile import load_policy

        load_policy(args.policy)  # a missing or bad file: one error now, not one per agent
    agents = args.agents
    most, why = agent_capacity()
    if agents > most:
        print(f"luminaguard: --agents {agents} capped to {most} ({why})", file=sys.stderr)
        agents = most
    from luminaguard.swarm.coordinator import Coordinator

    coordinator = Coordinator(
        repo,
        agents,
        until_empty=args.until_empty,
        policy=args.policy,
        approver=args.approver,
        lease_s=args.lease,
        hung_after_s=args.hung_after,
        keep_worktrees=args.keep_worktrees,
    )
    return coordinator.run()


def _remove_or_retry(queue: Any, action: str, ids: list[str]) -> int:
    """Remove or retry items, each or none: an unknown id, a running item (remove)
    or one that has not failed (retry) is one error and nothing changes."""
    states = queue.states(ids)
    unknown = [i for i in ids if i not in states]
    if unknown:
        raise UsageError(
            f"no item {', '.join(unknown)} in this queue (see `luminaguard swarm status`)"
        )
    if action == "remove":
        wrong = [i for i in ids if states[i] == "running"]
        why = "running (stop the swarm first, or wait)"
    else:
        wrong = [i for i in ids if states[i] != "failed"]
        why = "not failed (only a failed item is retried)"
    if wrong:
        raise UsageError(f"{', '.join(wrong)}: {why}; nothing changed")
    done = queue.remove(ids) if action == "remove" else queue.retry(ids)
    print(f"{'removed' if action == 'remove' else 'requeued'} {len(done)} item(s)")
    return EXIT_OK


AGENT_MEMORY_MB = 256
"""What one agent process and its sandboxes take, about (the model's answer is awaited, not computed)."""
AGENTS_PER_CPU = 8


def agent_capacity() -> tuple[int, str]:
    """How many agents this machine can run at once, and why that many."""
    cpus = os.cpu_count() or 1
    try:
        pages = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        free_mb = pages // (1024 * 1024)
    except (OSError, ValueError):
        free_mb = 1024
    most = max(1, min(cpus * AGENTS_PER_CPU, free_mb // AGENT_MEMORY_MB))
    why = (
        f"{cpus} CPU(s) at {AGENTS_PER_CPU} agents each, {free_mb / 1024:.1f} GiB free "
        f"at {AGENT_MEMORY_MB} MiB each"
    )
    return most, why
