"""Warm pools that outlive a command: the service keeps a sandbox (and its
warm pool) per workspace, and runs clients' commands in them over a Unix
socket.

The socket is ``<data_dir>/service.sock``: 0600 in the 0700 data directory,
and every connection's peer uid (``SO_PEERCRED``) must be ours, or it is
refused with one line. One request per connection, one JSON line each way:

    {"op": "exec", "workspace": DIR, "backend": "bwrap"|"gvisor", "argv": [...],
     "timeout_s": S, "stdin": TEXT, "settings": {SANDBOX SETTINGS}}
    → {"exit_code": N, "stdout": ..., "stderr": ..., "duration_s": ..., "timed_out": ..., "truncated": ...}
    → {"declined": WHY}: without "settings", when the workspace's settings say
      its command is not a pool's (a network, another backend or data dir)
    {"op": "stats"} → {"pools": [{"workspace": DIR, "backend": B, "idle": N, "served": N, ...}]}

What is served here is what a warm pool serves: commands with the workspace
read-only and no network (GREEN commands; `sandbox exec --read-only`, and a
run's or swarm worker's read-only steps). A request carries the sandbox
settings its client runs with (a client is the same user: it could start
any sandbox itself); without them the service reads the workspace's, as the
client would. There is one pool per backend, workspace and settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from luminaguard.errors import ConfigError, LuminaGuardError
from luminaguard.sandbox import POOLED
from luminaguard.service_socket import SOCKET_NAME, peer_uid

if TYPE_CHECKING:
    from luminaguard.config import SandboxSettings

MAX_REQUEST = 1024 * 1024
WORKSPACES = 4
"""Pools (a workspace on a backend) kept warm at once; the least recently used one is let go."""


class PoolService:
    """The socket server, on a thread with its own event loop."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / SOCKET_NAME
        self.sandboxes: OrderedDict[tuple[str, str, str], Any] = OrderedDict()
        self._made = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="pools", daemon=True)

    def start(self) -> None:
        self.path.unlink(missing_ok=True)  # left by a service that was killed
        self._thread.start()
        old = os.umask(0o177)  # the socket is created 0600: no window
        try:
            self._server = asyncio.run_coroutine_threadsafe(
                asyncio.start_unix_server(self._handle, path=str(self.path), limit=MAX_REQUEST),
                self._loop,
            ).result()
        finally:
            os.umask(old)

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for sandbox in self.sandboxes.values():
                sandbox.close()
            self.sandboxes.clear()

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=30)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self.path.unlink(missing_ok=True)

    def stats(self) -> list[dict[str, Any]]:
        """A row per pool. The micro-VM's clone pool is one for the whole
        process, whichever workspace a clone is staged with: one row, ``*``."""
        rows: list[dict[str, Any]] = []
        for (backend, workspace, _), sandbox in list(self.sandboxes.items()):
            stats = sandbox.pool_stats()
            if stats is None:
                continue
            if backend == "microvm":
                if any(row["backend"] == "microvm" for row in rows):
                    continue
                workspace = "*"
            rows.append({"workspace": workspace, "backend": backend, **stats})
        return rows

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            sock = writer.get_extra_info("socket")
            if peer_uid(sock) != os.getuid():
                await self._reply(writer, {"error": "refused: another user's connection"})
                return
            try:
                line = await reader.readline()
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise ValueError("not an object")
            except (ValueError, asyncio.LimitOverrunError):
                await self._reply(writer, {"error": "a request is one JSON object on one line"})
                return
            await self._reply(writer, await self._serve(request))
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _serve(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "stats":
            return {"pools": self.stats()}
        if op != "exec":
            return {"error": f"unknown op {op!r}; known: exec, stats"}
        argv = request.get("argv")
        workspace = request.get("workspace")
        backend = request.get("backend")
        settings = request.get("settings")
        if (
            not isinstance(argv, list)
            or not argv
            or not all(isinstance(a, str) for a in argv)
            or not isinstance(workspace, str)
        ):
            return {"error": "exec needs `argv` (strings) and `workspace`"}
        if settings is not None and not isinstance(settings, dict):
            return {"error": "`settings` is an object of sandbox settings"}
        try:
            if settings is None:
                # The client left the settings to us (the CLI's quick path): what
                # it would have read, or a reason it must run the command itself.
                declined, backend, sandbox_settings = await asyncio.to_thread(
                    self._workspace_settings, workspace, backend
                )
                if sandbox_settings is None:
                    return {"declined": declined}
            else:
                sandbox_settings = _validated(settings)
            backend = backend or "bwrap"
            if backend not in POOLED:
                known = ", ".join(POOLED)
                return {"error": f"no warm pool for backend {backend!r}; known: {known}"}
            sandbox = await asyncio.to_thread(self._sandbox, workspace, backend, sandbox_settings)
            result = await sandbox.exec(
                argv,
                stdin=request.get("stdin"),
                timeout_s=request.get("timeout_s"),
                read_only=True,
                offline=True,
            )
        except LuminaGuardError as exc:
            return {"error": str(exc)}
        return {
            "exit_code": result.exit_code,
            "stdout": result.stdout,
            "stderr": result.stderr,
            "duration_s": result.duration_s,
            "timed_out": result.timed_out,
            "truncated": result.truncated,
        }

    def _workspace_settings(
        self, workspace: str, backend: str | None
    ) -> tuple[str, str | None, SandboxSettings | None]:
        """The workspace's backend (the client's, else its settings') and sandbox
        settings; or, with no settings, why its command is not this service's to run."""
        from luminaguard.config import load_settings
        from luminaguard.sandbox.network import NetworkMode

        try:
            settings = load_settings(Path(workspace))
        except LuminaGuardError as exc:
            return str(exc), backend, None
        backend = backend or settings.sandbox.backend
        if settings.data_dir.resolve() != self.path.parent.resolve():
            return "the workspace's settings name another data directory", backend, None
        if backend not in POOLED:
            return f"no warm pool for backend {backend!r}", backend, None
        if NetworkMode.parse(settings.sandbox.network).kind != "none":
            return "the workspace's sandbox has a network", backend, None
        return "", backend, settings.sandbox

    def _sandbox(self, workspace: str, backend: str, settings: SandboxSettings) -> Any:
        """The workspace's sandbox on ``backend`` under ``settings``, kept warm
        (made on first use)."""
        key = (
            backend,
            str(Path(workspace).resolve()),
            json.dumps(settings.model_dump(mode="json"), sort_keys=True),
        )
        with self._made:
            return self._sandbox_for(key, settings)

    def _sandbox_for(self, key: tuple[str, str, str], sandbox_settings: SandboxSettings) -> Any:
        from luminaguard.sandbox import open_sandbox

        sandbox = self.sandboxes.get(key)
        if sandbox is None:
            backend, workspace, _ = key
            if sandbox_settings.pool_size < 1:
                sandbox_settings = sandbox_settings.model_copy(update={"pool_size": 1})
            sandbox = open_sandbox(backend, Path(workspace), sandbox_settings)
            self.sandboxes[key] = sandbox
            while len(self.sandboxes) > WORKSPACES:
                _, oldest = self.sandboxes.popitem(last=False)
                oldest.close()
        self.sandboxes.move_to_end(key)
        return sandbox

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, data: dict[str, Any]) -> None:
        writer.write(json.dumps(data).encode() + b"\n")
        await writer.drain()


def _validated(settings: dict[str, Any]) -> SandboxSettings:
    from pydantic import ValidationError

    from luminaguard.config import SandboxSettings, describe_validation_error

    try:
        return SandboxSettings.model_validate(settings)
    except ValidationError as exc:
        raise ConfigError(f"sandbox settings: {describe_validation_error(exc)}") from None


POOL_METRICS = (
    ("idle", "gauge", "Warm sandboxes ready."),
    ("in_use", "gauge", "Warm sandboxes running a command."),
    ("waiters", "gauge", "Commands waiting for a sandbox to start (none was idle)."),
    ("served", "counter", "Commands the warm pool ran."),
    ("served_idle", "counter", "Of those, the ones a ready sandbox was waiting for."),
    ("spawned", "counter", "Sandboxes started ahead of need."),
    ("failures", "counter", "Sandboxes that failed to start."),
    ("replaced", "counter", "Sandboxes found broken while made ready, and made again."),
)


def pool_prometheus(rows: list[dict[str, Any]]) -> list[str]:
    """The service's pools in Prometheus' text format, labelled by workspace and backend."""
    lines: list[str] = []

    def labels(row: dict[str, Any], **more: str) -> str:
        pairs = {"workspace": str(row["workspace"]), "backend": str(row["backend"]), **more}
        return ",".join(f"{k}={json.dumps(v)}" for k, v in pairs.items())

    for name, kind, about in POOL_METRICS:
        lines += [
            f"# HELP luminaguard_pool_{name} {about}",
            f"# TYPE luminaguard_pool_{name} {kind}",
        ]
        lines += [f"luminaguard_pool_{name}{{{labels(row)}}} {row[name]}" for row in rows]
    for name, about in (
        ("spawn_ms", "Starting a warm sandbox until it is ready, in ms (the newest samples)."),
        ("acquire_ms", "A command's wait for a warm sandbox, in ms (the newest samples)."),
    ):
        lines += [
            f"# HELP luminaguard_pool_{name} {about}",
            f"# TYPE luminaguard_pool_{name} gauge",
        ]
        for row in rows:
            for q, quantile in (("p50", "0.5"), ("p95", "0.95"), ("p99", "0.99")):
                lines.append(
                    f"luminaguard_pool_{name}{{{labels(row, quantile=quantile)}}} {row[name][q]}"
                )
    return lines
