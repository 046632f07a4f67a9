"""`luminaguard classify` and `luminaguard approvals`: the Approval Cliff from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from luminaguard.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    Parser,
    say,
    workspace_arg,
    workspace_dir,
)
from luminaguard.core.text import inert
from luminaguard.errors import UsageError


def add_classify(sub: Any) -> None:
    """classify: risk of actions read as JSON lines."""
    classify = sub.add_parser("classify", help="risk of actions read as JSON lines on stdin")
    workspace_arg(classify)
    classify.set_defaults(handler=cmd_classify)


def add_approvals(sub: Any) -> None:
    """approvals: the shared approval inbox."""
    appr = sub.add_parser(
        "approvals", help="the shared approval inbox (Textual), or list / decide from scripts"
    )
    appr.add_argument(
        "--as", dest="as_", metavar="NAME", help="who is deciding (default: the local user)"
    )
    asub2 = appr.add_subparsers(dest="approvals_command", metavar="ACTION", parser_class=Parser)
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
    appr.set_defaults(handler=cmd_approvals)


def add_grants(sub: Any) -> None:
    """grants: the standing permissions that answer approvals in advance."""
    grants = sub.add_parser("grants", help="grants that answer approvals in advance: list, revoke")
    gsub = grants.add_subparsers(
        dest="grants_command", metavar="ACTION", required=True, parser_class=Parser
    )
    glist = gsub.add_parser("list", help="the grants in force, soonest to expire first")
    glist.add_argument("--json", action="store_true")
    glist.add_argument("--policy", type=Path, help="the policy file whose standing grants to show")
    grevoke = gsub.add_parser("revoke", help="drop a grant made at a prompt or in the inbox")
    which = grevoke.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?", help="the grant's id (from `grants list`)")
    which.add_argument("--all", action="store_true", help="every stored grant")
    grants.set_defaults(handler=cmd_grants)


def cmd_grants(args: argparse.Namespace) -> int:
    import time

    from luminaguard.config import load_settings
    from luminaguard.policy.grants import GrantStore
    from luminaguard.policy.policyfile import load_policy

    settings = load_settings(Path.cwd())
    if args.grants_command == "revoke":
        store = GrantStore(settings.data_dir / "state.db")
        try:
            gone = store.revoke(None if args.all else args.id)
        finally:
            store.close()
        if not gone and not args.all:
            if str(args.id).startswith("policy-"):
                raise UsageError(
                    f"{args.id} is a standing grant of the policy file: remove it there"
                )
            raise UsageError(f"no stored grant {args.id} (see `luminaguard grants list`)")
        say(f"revoked {gone} grant(s)")
        return EXIT_OK
    policy = load_policy(args.policy or settings.policy)
    store = GrantStore(settings.data_dir / "state.db", policy.standing_grants(time.time()))
    try:
        active = store.active()
    finally:
        store.close()
    if args.json:
        print(json.dumps([g.to_dict() for g in active], indent=2, ensure_ascii=False))
        return EXIT_OK
    if not active:
        say("no grants in force")
        return EXIT_OK
    now = time.time()
    for g in active:
        what = g.exact or g.pattern or "*"
        scope = [f"up to {g.max_risk.label}"]
        if g.run_id:
            scope.append(f"run {g.run_id}")
        if g.workspace:
            scope.append(f"in {g.workspace}")
        if g.hosts:
            scope.append("hosts " + ",".join(g.hosts))
        left = max(0.0, g.until - now) / 3600
        print(
            inert(
                f"{g.id}  {g.tool} {what!r}  {', '.join(scope)}  "
                f"{left:.1f} h left  ({g.created_by or 'unknown'})",
                newlines=False,
            )
        )
    return EXIT_OK


def cmd_classify(args: argparse.Namespace) -> int:
    from luminaguard.config import load_settings
    from luminaguard.policy.classify import classify_action
    from luminaguard.sandbox.workspace import Workspace

    workspace = workspace_dir(args.workspace)
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
    from luminaguard.policy.permissions import acting_principal
    from luminaguard.policy.policyfile import load_policy

    settings = load_settings(Path.cwd())
    store = InboxStore(settings.data_dir / "inbox.db")
    who = acting_principal(args.as_, load_policy(settings.policy).principals)
    if args.approvals_command == "list":
        items = store.pending()
        if args.json:
            print(json.dumps([i.to_dict() for i in items], indent=2, ensure_ascii=False))
        elif not items:
            say("no pending approvals")
        for i in items if not args.json else []:
            say(f"{i.id:>5}  {i.card.risk.label:<7} {i.agent:<14} {i.card.tool:<12} {i.task[:50]}")
        asked = len(store.questions())
        if asked and not args.json:
            say(f"{asked} question(s) from MCP servers waiting: luminaguard approvals questions")
        return EXIT_OK
    if args.approvals_command == "questions":
        questions = store.questions()
        if args.json:
            print(json.dumps([q.to_dict() for q in questions], indent=2, ensure_ascii=False))
        elif not questions:
            say("no questions waiting")
        for q in questions if not args.json else []:
            say(f"{q.id:>5}  {q.agent:<14} {q.server:<12} {q.message}")
            for name, prop in (q.schema.get("properties") or {}).items():
                required = name in (q.schema.get("required") or [])
                choices = f" one of {', '.join(map(str, prop['enum']))}" if prop.get("enum") else ""
                default = f" [default {prop['default']}]" if "default" in prop else ""
                say(
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
        say(f"{args.id}: {done} by {who}")
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
            say(f"{t.id}: {args.verdict}d by {who}")
        return EXIT_OK
    if not sys.stdout.isatty():
        raise UsageError(
            "the approval inbox needs a terminal; use `luminaguard approvals list` or `decide` from scripts"
        )
    from luminaguard.ui.inbox_app import run_inbox

    run_inbox(store, who)
    return EXIT_OK
