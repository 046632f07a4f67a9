"""`luminaguard serve` and `luminaguard open`: the local service's web inbox
and /metrics (``service/web.py``)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from luminaguard.cli.common import EXIT_ERROR, EXIT_OK, say
from luminaguard.errors import UsageError

STOP_WAIT_S = 10.0
RECONNECT_S = 5.0
"""How often `serve` tries the fleet's service again while it does not answer."""


def add_serve(sub: Any) -> None:
    """serve: the local service (web inbox, /metrics), in the foreground."""
    serve = sub.add_parser(
        "serve", help="the local service in the foreground: one web inbox for every agent, /metrics"
    )
    serve.add_argument("--port", type=int, default=0, help="on 127.0.0.1 (default: a free one)")
    what = serve.add_mutually_exclusive_group()
    what.add_argument("--status", action="store_true", help="whether it runs, and where")
    what.add_argument("--stop", action="store_true", help="stop the running service")
    serve.set_defaults(handler=cmd_serve)
    opener = sub.add_parser("open", help="open the running service's web inbox in a browser")
    opener.add_argument(
        "--no-browser", action="store_true", help="only print the address (with its token)"
    )
    opener.set_defaults(handler=cmd_open)


def _settings() -> Any:
    from luminaguard.config import load_settings

    return load_settings(Path.cwd())


def _answering(port: int) -> bool:
    try:
        import urllib.request  # ~50 ms: only where it is used, not on every command's start

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def cmd_serve(args: argparse.Namespace) -> int:
    from luminaguard.service.web import read_state

    settings = _settings()
    data_dir = Path(settings.data_dir)
    state = read_state(data_dir)
    if args.status:
        if state is None or not _answering(int(state["port"])):
            say("luminaguard serve: not running")
            return EXIT_ERROR
        say(f"luminaguard serve: running (pid {state['pid']}) at http://127.0.0.1:{state['port']}/")
        return EXIT_OK
    if args.stop:
        if state is None:
            say("luminaguard serve: not running")
            return EXIT_OK
        os.kill(int(state["pid"]), signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT_S
        while read_state(data_dir) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        if read_state(data_dir) is not None:
            say(f"luminaguard serve: pid {state['pid']} did not stop within {STOP_WAIT_S:g} s")
            return EXIT_ERROR
        say("luminaguard serve: stopped")
        return EXIT_OK
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port} is not a port (0-65535)")
    if state is not None and _answering(int(state["port"])):
        raise UsageError(
            f"the service already runs (pid {state['pid']}, port {state['port']}): "
            "luminaguard serve --stop first"
        )
    args.fleet_used = settings.fleet.inbox  # its SDK must end the process (cli._exit_now)
    return _serve(settings, args.port)


def _serve(settings: Any, port: int) -> int:
    from luminaguard.policy.permissions import acting_principal
    from luminaguard.policy.policyfile import load_policy
    from luminaguard.service.pools import PoolService
    from luminaguard.service.web import WebService, write_state

    data_dir = Path(settings.data_dir)
    principal = acting_principal(None, load_policy(settings.policy).principals)
    pools = PoolService(data_dir)
    fleet_runs: list[dict[str, Any]] = []
    try:
        service = WebService(
            data_dir,
            port=port,
            principal=principal,
            pools=pools.stats,
            fleet=(lambda: list(fleet_runs)) if settings.fleet.inbox else None,
            fleet_address=settings.fleet.address,
        )
    except OSError as exc:
        raise UsageError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}") from None
    pools.start()
    if settings.fleet.inbox:
        _bridge_fleet(settings, lambda runs: fleet_runs.__setitem__(slice(None), runs))
    state = write_state(data_dir, service)

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(f"luminaguard serve: the inbox and /metrics at {service.url}", flush=True)
    print(
        f"  decisions are made as {principal}; warm pools for `sandbox exec --read-only` on "
        f"{pools.path}; stop with Ctrl-C or `luminaguard serve --stop`"
    )
    sys.stdout.flush()
    try:
        service.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        state.unlink(missing_ok=True)
        service.shutdown()
        pools.stop()
    return EXIT_OK


def _bridge_fleet(settings: Any, seen: Callable[[list[dict[str, Any]]], None]) -> None:
    """The fleet's waiting cards in this inbox (``fleet.bridge``), from a thread
    of its own: connected once the fleet's service answers."""
    import asyncio
    import importlib.util
    import threading

    if importlib.util.find_spec("temporalio") is None:
        raise UsageError("fleet.inbox needs the Temporal SDK: pip install 'luminaguard[fleet]'")

    def say(line: str) -> None:
        print(f"  fleet: {line}", flush=True)

    async def main() -> None:
        from luminaguard.fleet.bridge import bridge
        from luminaguard.fleet.client import connect
        from luminaguard.policy.inbox import InboxStore

        while True:
            try:
                client = await connect(settings.fleet)
                break
            except UsageError as exc:
                say(f"{exc}; trying again in {RECONNECT_S:g} s")
                await asyncio.sleep(RECONNECT_S)
        say(f"cards of fleet runs at {settings.fleet.address} are shown in this inbox")
        await bridge(client, InboxStore(Path(settings.data_dir) / "inbox.db"), say, seen)

    threading.Thread(target=lambda: asyncio.run(main()), name="fleet-inbox", daemon=True).start()


def cmd_open(args: argparse.Namespace) -> int:
    from luminaguard.service.web import read_state, token

    data_dir = Path(_settings().data_dir)
    state = read_state(data_dir)
    if state is None:
        raise UsageError("the service does not run: start it with `luminaguard serve`")
    url = f"http://127.0.0.1:{state['port']}/?token={token(data_dir)}"
    print(url)
    if not args.no_browser:
        import webbrowser

        webbrowser.open(url)
    return EXIT_OK
