"""The bubblewrap backend: each command in fresh Linux namespaces.

What a sandbox sees is ``profile.py``; how it starts (limits, cgroup, the
self-test gate) is ``spawn.py``; this module puts them behind the ``Sandbox``
protocol: commands (cold, or from the warm pool), copy-on-write previews and
their commits (``preview.py``), long-lived processes (MCP servers) and the
workspace's host-side file operations.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from luminaguard.config import SandboxSettings
from luminaguard.errors import ConfigError, LuminaGuardError, SandboxError
from luminaguard.protocols import ExecResult, NetworkNotice, Preview, ProcessLaunch, ProcessSpec
from luminaguard.sandbox import preview as previews
from luminaguard.sandbox.network import NONE, RECORD, NetworkMode
from luminaguard.sandbox.process import collect, kill_group
from luminaguard.sandbox.profile import (
    HELPER_DIR,
    SANDBOX_PYTHON,
    Layout,
    find_bwrap,
)
from luminaguard.sandbox.spawn import Spawn
from luminaguard.sandbox.workspace import Workspace, WorkspaceFiles

if TYPE_CHECKING:
    from luminaguard.sandbox.pool import WarmPool

__all__ = ["HELPER_DIR", "SANDBOX_PYTHON", "BwrapSandbox", "Layout", "launch"]


async def launch(
    layout: Layout,
    settings: SandboxSettings,
    argv: Sequence[str],
    *,
    stdin: str | None,
    timeout_s: float | None,
    stop_when: Callable[[], bool] | None = None,
    spawner: type[Spawn] = Spawn,
) -> tuple[ExecResult, list[dict[str, object]]]:
    """Run one command in a fresh sandbox (started by ``spawner``: bubblewrap
    unless another backend says so); returns its result and the network
    requests seen. ``stop_when`` is asked while it runs (every ``WATCH_S``); when
    it says so, the whole sandbox is killed (a preview past its disk cap)."""
    await ensure_self_test(settings, spawner)
    spawn = spawner(layout, settings, argv)
    try:
        async with spawn.proxy() as proxy:
            proc = spawn.popen()
            spawn.release_data()

            def kill() -> None:
                kill_group(proc)
                spawn.cgroup.kill()

            watch = (
                asyncio.create_task(_stop_when(stop_when, kill)) if stop_when is not None else None
            )
            try:
                result = await collect(
                    proc,
                    stdin=stdin,
                    timeout_s=timeout_s or settings.timeout_s,
                    output_limit=settings.output_limit_kb * 1024,
                    on_kill=spawn.cgroup.kill,
                )
            finally:
                if watch is not None:
                    watch.cancel()
        return result, list(proxy.attempts) if proxy is not None else []
    finally:
        spawn.close()


WATCH_S = 0.05


async def _stop_when(should_stop: Callable[[], bool], kill: Callable[[], None]) -> None:
    # Nothing is written before the command starts: the first look is one
    # interval in, so a short command costs no walk at all.
    while True:
        await asyncio.sleep(WATCH_S)
        if await asyncio.to_thread(should_stop):
            kill()
            return


async def ensure_self_test(settings: SandboxSettings, spawner: type[Spawn] = Spawn) -> None:
    """The gate, from async code: the test's one run goes to a thread, off the loop."""
    gate = spawner.gate()
    if not gate.passed:
        await asyncio.to_thread(gate.check, settings)


class BwrapSandbox(WorkspaceFiles):
    """Runs each command in a fresh bubblewrap sandbox over one workspace.

    Another backend that starts its sandboxes differently but keeps this
    one's layout, pool, previews and commits is a subclass with its own
    ``spawner`` (gVisor: ``gvisor.GvisorSandbox``)."""

    spawner: type[Spawn] = Spawn
    name = "bwrap"

    def __init__(
        self,
        workspace: Path,
        settings: SandboxSettings,
        *,
        network: NetworkMode | None = None,
        read_only: bool = False,
        ro_binds: Sequence[tuple[str, str]] = (),
        env: dict[str, str] | None = None,
        service: Path | None = None,
    ) -> None:
        """``service``: the data directory of a local service (``luminaguard
        serve``) whose warm pools serve this sandbox's pooled commands while
        it runs; without one (or while none runs), this sandbox's own pool."""
        self.service = service
        self.ws = Workspace(workspace)
        self.workspace = self.ws.root
        self.settings = settings
        self.mode = network or NetworkMode.parse(settings.network)
        self.network = str(self.mode)
        self.layout = Layout(
            self.workspace,
            "ro" if read_only else "rw",
            self.mode,
            ro_binds=tuple(ro_binds),
            env=tuple((env or {}).items()),
        )
        self._last_network: list[dict[str, object]] = []
        self._pool: WarmPool | None = None
        self.check_available()
        if self.mode.kind == "host":
            print(
                "luminaguard: WARNING: sandbox network mode is `host`: commands can reach any network",
                file=sys.stderr,
            )

    @staticmethod
    def check_available() -> None:
        """Raise ``SandboxUnavailable`` when this backend cannot run here."""
        find_bwrap()

    async def exec(
        self,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        timeout_s: float | None = None,
        read_only: bool = False,
        offline: bool = False,
    ) -> ExecResult:
        if not argv:
            raise SandboxError("empty command")
        await ensure_self_test(self.settings, self.spawner)
        read_only = read_only or self.layout.workspace_mode == "ro"
        offline = offline or self.mode.kind == "none"
        pool = self._warm_pool() if read_only and offline else None
        if pool is not None and pool.fits(argv):
            self._last_network = []
            if self.service is not None:
                from luminaguard.service_socket import run_in_service

                served = await run_in_service(
                    self.service, self.workspace, list(argv), backend=self.name,
                    settings=self.settings, stdin=stdin, timeout_s=timeout_s,
                )  # fmt: skip
                if served is not None:
                    return served
                self.service = None  # not running: this sandbox's own pool from now on
            pool.fill()
            return await pool.run(argv, stdin=stdin, timeout_s=timeout_s)
        layout = self.layout
        if read_only:
            layout = replace(layout, workspace_mode="ro")
        if offline:
            layout = replace(layout, network=NONE)
        result, self._last_network = await launch(
            layout, self.settings, argv, stdin=stdin, timeout_s=timeout_s, spawner=self.spawner
        )
        return result

    def network_records(self) -> list[dict[str, object]]:
        return list(self._last_network)

    def _warm_pool(self) -> WarmPool | None:
        """The warm pool serves the common case: GREEN commands, which run with
        the workspace read-only and no network (whatever the sandbox's mode).
        It starts filling when first asked for, not when the sandbox is made."""
        if self.settings.pool_size <= 0 or self.layout.ro_binds or self.layout.env:
            return None
        if self._pool is None:
            from luminaguard.sandbox.pool import WarmPool

            self._pool = WarmPool(
                replace(self.layout, workspace_mode="ro", network=NONE),
                self.settings,
                self.settings.pool_size,
                spawner=self.spawner,
            )
        return self._pool

    async def preview(
        self,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        timeout_s: float | None = None,
        live: bool = False,
    ) -> Preview:
        """Run ``argv`` on a throw-away copy-on-write layer of the workspace, network
        cut (``live``: the sandbox's own network mode)."""
        return await previews.run_preview(
            self.workspace,
            self.settings,
            argv,
            stdin=stdin,
            timeout_s=timeout_s,
            ro_binds=self.layout.ro_binds,
            network=NetworkMode.parse(self.settings.network) if live else RECORD,
            spawner=self.spawner,
        )

    def commit(self, handle: str) -> None:
        previews.commit(handle, self.workspace)

    def discard(self, handle: str) -> None:
        previews.discard(handle)

    @contextlib.asynccontextmanager
    async def process(
        self, spec: ProcessSpec, *, on_network: NetworkNotice | None = None
    ) -> AsyncIterator[ProcessLaunch]:
        """A long-lived process (an MCP server) in a sandbox of its own: the
        workspace read-only (read-write only with ``spec.writable``),
        ``spec.ro_paths`` read-only at their own paths,
        the network per ``spec.network`` (an allow-list runs the egress proxy
        for the process's lifetime)."""
        try:
            mode = NetworkMode.parse(spec.network)
        except LuminaGuardError as exc:
            raise ConfigError(str(exc)) from None
        if mode.kind not in ("none", "host", "allow"):
            raise ConfigError("use none, allow:HOST[,HOST...] or host for a long-lived process")
        env = dict(spec.env)
        if mode.proxied:
            # Node honours the proxy variables only when told to.
            env = {"NODE_USE_ENV_PROXY": "1", **env}
        layout = replace(
            self.layout,
            workspace_mode="rw" if spec.writable else "ro",
            network=mode,
            ro_binds=tuple((p, p) for p in dict.fromkeys(spec.ro_paths)),
            env=tuple(env.items()),
        )
        await ensure_self_test(self.settings, self.spawner)
        spawn = self.spawner(layout, self.settings, spec.argv, fds="files")
        try:
            async with spawn.proxy() as proxy:
                if proxy is not None:
                    proxy.notify = on_network
                yield ProcessLaunch(spawn.argv, spawn.env)
        finally:
            spawn.close(now=True)

    def pool_stats(self) -> dict[str, object] | None:
        """The warm pool's counters, or None before it is first used."""
        return self._pool.stats_dict() if self._pool is not None else None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
