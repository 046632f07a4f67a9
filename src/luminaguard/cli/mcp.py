"""`luminaguard mcp …`: the configured MCP servers, directly."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from luminaguard.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    Parser,
    say,
    workspace_arg,
    workspace_dir,
)
from luminaguard.errors import LuminaGuardError, UsageError


def add_mcp(sub: Any) -> None:
    """mcp: MCP servers from [mcp.servers]."""
    mcp = sub.add_parser("mcp", help="MCP servers from [mcp.servers] in luminaguard.toml")
    msub = mcp.add_subparsers(
        dest="mcp_command", metavar="ACTION", required=True, parser_class=Parser
    )
    mlist = msub.add_parser("list", help="the configured servers")
    workspace_arg(mlist)
    mlist.add_argument("--json", action="store_true")
    mtools = msub.add_parser("tools", help="a server's tools, with their annotations and level")
    workspace_arg(mtools)
    mtools.add_argument("server")
    mtools.add_argument("--json", action="store_true")
    mres = msub.add_parser("resources", help="a server's resources")
    workspace_arg(mres)
    mres.add_argument("server")
    mres.add_argument("--json", action="store_true")
    mread = msub.add_parser("read", help="read one resource")
    workspace_arg(mread)
    mread.add_argument("server")
    mread.add_argument("uri")
    mprompts = msub.add_parser("prompts", help="a server's prompts")
    workspace_arg(mprompts)
    mprompts.add_argument("server")
    mprompts.add_argument("--json", action="store_true")
    mprompt = msub.add_parser("prompt", help="render one of a server's prompts")
    workspace_arg(mprompt)
    mprompt.add_argument("server")
    mprompt.add_argument("name")
    mprompt.add_argument("arguments", nargs="*", metavar="KEY=VALUE", help="the prompt's arguments")
    mprompt.add_argument("--json", action="store_true")
    mcall = msub.add_parser(
        "call", help="call a tool and print the result (recorded in the audit journal)"
    )
    workspace_arg(mcall)
    mcall.add_argument("server")
    mcall.add_argument("tool")
    mcall.add_argument("arguments", nargs="?", default="{}", help="a JSON object")
    mcall.add_argument("--json", action="store_true")

    mlogin = msub.add_parser(
        "login", help="authorize with an HTTP server (OAuth): open the printed address"
    )
    workspace_arg(mlogin)
    mlogin.add_argument("server")
    mlogin.add_argument(
        "--no-browser", action="store_true", help="only print the address, do not open a browser"
    )
    mlogout = msub.add_parser("logout", help="forget an HTTP server's stored tokens")
    workspace_arg(mlogout)
    mlogout.add_argument("server")
    mcp.set_defaults(handler=cmd_mcp)


def cmd_mcp(args: argparse.Namespace) -> int:
    import asyncio

    from luminaguard.config import load_settings
    from luminaguard.mcp.client import McpServerHandle
    from luminaguard.policy.classify import classify_mcp

    workspace = workspace_dir(args.workspace)
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
            say("no MCP servers configured ([mcp.servers.NAME] in luminaguard.toml)")
        for r in rows if not args.json else []:
            mode = (
                "sandboxed"
                if r["sandboxed"]
                else ("http" if r["transport"] == "http" else "ON THE HOST, NOT SANDBOXED")
            )
            if r["sandboxed"] and r["network"] != "none":
                mode += f", net {r['network']}"
            say(
                f"{r['name']:<16} {mode:<26} {'trusted' if r['trusted'] else 'untrusted':<9} {r['target']}"
            )
        return EXIT_OK
    if args.server not in servers:
        known = ", ".join(sorted(servers)) or "none configured"
        raise UsageError(f"no MCP server {args.server!r} in the config; known servers: {known}")
    if args.mcp_command == "prompt":
        _prompt_arguments(args.arguments)  # a malformed one is said before the server starts
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
    if args.mcp_command == "prompt":
        return _mcp_prompt(handle, args)
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
            say(f"{row['risk']:<7} {row['name']:<40} {first}")
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
        say(f"{args.server}: {'stored tokens removed' if had else 'no stored tokens'}")
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
    say(f"{args.server}: connected, {count} tools; {stored}")
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
        say(handle.render_contents(result))
        return EXIT_OK
    rows = [item.model_dump(mode="json", by_alias=True, exclude_none=True) for item in result]
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    for row in rows if not args.json else []:
        about = (
            (row.get("description") or "").splitlines()[0][:60] if row.get("description") else ""
        )
        say(f"{row.get('uri') or row.get('name'):<50} {about}")
    return EXIT_OK


def _prompt_arguments(pairs: list[str]) -> dict[str, str]:
    given: dict[str, str] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise UsageError(f"prompt arguments are KEY=VALUE, not {pair!r}")
        given[key] = value
    return given


def _mcp_prompt(handle: Any, args: argparse.Namespace) -> int:
    """prompts/get, after checking the name and the arguments against the
    server's own list (one sentence for a mistake, not the server's error)."""
    import asyncio

    given = _prompt_arguments(args.arguments)

    async def render() -> Any:
        try:
            prompts = {p.name: p for p in await handle.list_prompts()}
            prompt = prompts.get(args.name)
            if prompt is None:
                known = ", ".join(sorted(prompts)) or "none"
                raise UsageError(
                    f"no prompt {args.name!r} on MCP server {args.server}; its prompts: {known}"
                )
            declared = {a.name: a for a in prompt.arguments or []}
            unknown = sorted(set(given) - set(declared))
            missing = [n for n, a in declared.items() if a.required and n not in given]
            if unknown or missing:
                wrong = [f"unknown: {', '.join(unknown)}"] if unknown else []
                wrong += [f"missing: {', '.join(missing)}"] if missing else []
                takes = ", ".join(
                    f"{n}{'' if a.required else ' (optional)'}" for n, a in declared.items()
                )
                raise UsageError(
                    f"prompt {args.name!r} of {args.server} takes {takes or 'no arguments'} "
                    f"({'; '.join(wrong)})"
                )
            return await handle.get_prompt(args.name, given or None)
        finally:
            await handle.close()

    result = asyncio.run(render())
    if args.json:
        print(json.dumps(result.model_dump(mode="json", by_alias=True, exclude_none=True)))
    else:
        say(handle.render_prompt(result))
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
        say(json.dumps({"is_error": is_error, "text": text, **data}, indent=2, ensure_ascii=False))
    else:
        say(text)
    return EXIT_ERROR if is_error else EXIT_OK
