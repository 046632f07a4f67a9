"""`luminaguard audit list|show|verify`: the tamper-evident run journals."""

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
)
from luminaguard.core.text import inert
from luminaguard.errors import UsageError


def add_audit(sub: Any) -> None:
    """audit: the run journals."""
    audit = sub.add_parser("audit", help="the tamper-evident run journals")
    asub = audit.add_subparsers(
        dest="audit_command", metavar="ACTION", required=True, parser_class=Parser
    )
    alist = asub.add_parser("list", help="the runs, newest first (--json: oldest first)")
    alist.add_argument("--json", action="store_true")
    alist.add_argument("--limit", type=int, metavar="N", help="only the N newest runs")
    ashow = asub.add_parser("show", help="one run's journal")
    ashow.add_argument("run", help="run id (or a unique prefix)")
    ashow.add_argument("--json", action="store_true")
    averify = asub.add_parser("verify", help="check the hash chain of one run, or of every run")
    averify.add_argument("run", nargs="?", help="run id (default: every run)")
    averify.add_argument("--json", action="store_true")
    aexport = asub.add_parser(
        "export", help="send every run's head (records, last hash, key) to an outside witness"
    )
    aexport.add_argument(
        "--to",
        default="-",
        help="a file to append JSON lines to, `syslog`, or - for standard output (default)",
    )
    audit.set_defaults(handler=cmd_audit)


def cmd_audit(args: argparse.Namespace) -> int:
    from luminaguard.audit.index import RunIndex
    from luminaguard.audit.journal import read_records, verify
    from luminaguard.config import load_settings

    settings = load_settings(Path.cwd())
    index = RunIndex(settings.data_dir / "index.db")
    if args.audit_command == "export":
        return _export(index.list(), args.to)
    if args.audit_command == "list":
        from luminaguard.audit.run import status_of

        if args.limit is not None and args.limit < 1:
            raise UsageError("--limit must be at least 1")
        listed = index.list()
        if args.limit is not None:
            listed = listed[-args.limit :]
        runs = [{**r, "status": status_of(settings.data_dir, r)} for r in listed]
        if args.json:
            keys = ("id", "task", "started", "outcome", "status", "path")
            print(json.dumps([{k: r[k] for k in keys} for r in runs], indent=2))
        elif not runs:
            say(f"no runs recorded in {settings.data_dir}")
        else:
            width = max(len(r["id"]) for r in runs)
            say(f"{'RUN':<{width}}  {'STARTED (UTC)':<19}  {'STATUS':<16} TASK")
            for r in reversed(runs):
                task = inert(r["task"].replace("\n", " "))
                say(f"{r['id']:<{width}}  {r['started'][:19]}  {r['status']:<16} {task[:60]}")
        interrupted = [r["id"] for r in runs if r["status"] == "interrupted"]
        if interrupted and not args.json:
            say(f"resume an interrupted run with: luminaguard run --resume {interrupted[-1]}")
        return EXIT_OK
    if args.audit_command == "show":
        run = _get_run(index, args.run)
        records = read_records(Path(run["path"]))
        if args.json:
            print(json.dumps({"run": run, "records": records}, indent=2, ensure_ascii=False))
        else:
            say(
                f"run {run['id']}: {run['task']}\n  started {run['started']}, outcome {run['outcome'] or 'running'}\n  journal {run['path']}\n"
            )
            for rec in records:
                say(
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
            say(f"{'✔' if r['ok'] else '✘'} {r['id']}  {r['path']}")
            for problem in r["problems"]:
                say(f"    {problem}")
        if not results:
            say("no runs to verify")
    return EXIT_OK if all(r["ok"] for r in results) else EXIT_ERROR


def _export(runs: list[dict[str, Any]], to: str) -> int:
    """Heads to a witness outside the data directory: whoever later rewrites a
    journal (and the index) cannot rewrite what the witness already holds."""
    import time

    from luminaguard.audit.signing import fingerprint, user_public_key

    key = user_public_key()
    lines = [
        json.dumps(
            {
                "run": r["id"],
                "records": r["records"],
                "head": r["head"],
                "outcome": r["outcome"],
                "key": fingerprint(key) if key else None,
                "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
        )
        for r in runs
    ]
    if to == "syslog":
        import syslog

        syslog.openlog("luminaguard", 0, syslog.LOG_USER)
        for line in lines:
            syslog.syslog(syslog.LOG_NOTICE, line)
    elif to == "-":
        for line in lines:
            print(line)
    else:
        try:
            with open(to, "a", encoding="utf-8") as f:
                f.write("".join(line + "\n" for line in lines))
        except OSError as exc:
            raise UsageError(f"cannot append to {to}: {exc.strerror}") from None
    print(f"luminaguard: exported {len(lines)} run head(s) to {to}", file=sys.stderr)
    return EXIT_OK


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
        call = d["call"]
        args = call.get("arguments") if isinstance(call.get("arguments"), dict) else {}
        what = args.get("command") or args.get("path") or ""
        shown = f" {str(what).splitlines()[0][:80]!r}" if what else ""
        return f"{call['name']}{shown} [{d.get('risk')}]"
    if t == "decision":
        verdict = "approved" if d.get("approved") else "denied"
        return f"{verdict} by {d.get('by')}: {str(d.get('reason', ''))[:80]}"
    if t == "tool_result":
        changes = (d.get("data") or {}).get("changes") or {}
        changed = "; ".join(
            f"{kind} {', '.join(map(str, paths[:5]))}{' …' if len(paths) > 5 else ''}"
            for kind in ("created", "modified", "deleted")
            if (paths := changes.get(kind))
        )
        state = "error" if d.get("is_error") else "ok"
        return f"{d.get('name')}: {state}" + (f" ({changed})" if changed else "")
    if t in ("run_started", "user"):
        return str(d.get("task") or d.get("content", ""))[:60]
    if t == "run_finished":
        return f"{d.get('outcome')}: {str(d.get('message', ''))[:50]}"
    return json.dumps(d)[:60]
