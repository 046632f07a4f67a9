"""Everything one agent run needs, put together in one place: the router and
its metrics, the policy and its gate, the sandbox, the tools, the journal.

Used by `luminaguard run`, the demo and the swarm's workers alike.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from luminaguard.agent.loop import Agent, Budgets, Report, RunResult, model_call_limit
from luminaguard.agent.outcomes import Finished, RunEnded
from luminaguard.audit.run import RunRecorder
from luminaguard.config import McpServer, Settings
from luminaguard.errors import ToolError, UsageError
from luminaguard.llm.scripted import ScriptedProvider
from luminaguard.policy.policyfile import Policy
from luminaguard.protocols import Approver

if TYPE_CHECKING:
    from luminaguard.tools.mcp_tools import McpTools


@dataclass
class SessionOptions:
    workspace: Path
    spec: str | None
    policy: Policy
    backend: str
    max_steps: int
    approver: Approver
    report: Report
    agent_name: str = ""
    ro_binds: tuple[tuple[str, str], ...] = ()
    """Host paths the sandbox also sees, read-only: (host path, sandbox path) (a worktree's git dir)."""
    details: dict[str, Any] = field(default_factory=dict)
    """What the run was started with (policy file, approver, sandbox, step limit),
    journaled so that a resumed run keeps them."""


def make_router(
    spec: str | None,
    settings: Settings,
    metrics: Any,
    before_attempt: Callable[[str], None] | None = None,
    notify: Callable[[str, dict[str, Any]], None] | None = None,
) -> Any:
    """Every model request goes through the router: one spec is a group of one."""
    from luminaguard.llm.registry import open_deployment, split_spec
    from luminaguard.llm.router import Router

    factory = functools.partial(open_deployment, settings=settings.llm)
    prices = {k: (p.input_per_mtok, p.output_per_mtok) for k, p in settings.llm.prices.items()}
    options: dict[str, Any] = {
        "metrics": metrics,
        "prices": prices,
        "before_attempt": before_attempt,
        "notify": notify,
    }
    for name in [m for g in settings.router.groups.values() for m in g.models]:
        split_spec(name)
    if spec:
        split_spec(spec)
        factory(spec)  # fail now, with one clear error, on a bad spec or a missing key
        return Router.single(spec, factory, settings.router, **options)
    if not settings.router.groups:
        raise UsageError(
            "no model: pass --model PROVIDER/MODEL or --playbook FILE, or set model (or [router.groups]) in luminaguard.toml"
        )
    return Router(settings.router, factory, **options)


class Session:
    """One run, set up; `run` or `resume` it once, then `close`."""

    def __init__(
        self,
        settings: Settings,
        options: SessionOptions,
        *,
        task: str = "",
        resume: str | None = None,
        run_id: str | None = None,
    ) -> None:
        """A new run (``run_id``: with that id), or the run ``resume`` reopened."""
        from luminaguard.llm.metrics import ProviderMetrics
        from luminaguard.policy.gate import ApprovalManager, GateContext
        from luminaguard.policy.grants import GrantStore
        from luminaguard.policy.ratelimit import Limiter
        from luminaguard.sandbox import POOLED, open_sandbox
        from luminaguard.tools.builtin import BuiltinTools
        from luminaguard.tools.openapi import OpenApiTools
        from luminaguard.tools.toolbox import ToolBox

        self.records: list[dict[str, Any]] = []
        self.recorder: RunRecorder
        workspace, spec = options.workspace, options.spec
        if resume:
            self.recorder, row, self.records = RunRecorder.resume(settings.data_dir, resume)
            task = row["task"]
            spec = spec or row["model"] or None
            workspace = Path(row["workspace"]) if row["workspace"] else workspace
        self.task, self.spec, self.workspace = task, spec, workspace
        self.metrics = ProviderMetrics(settings.data_dir / "metrics.db")
        self.policy = options.policy
        extra: dict[str, Any] = {"ro_binds": options.ro_binds} if options.ro_binds else {}
        if options.backend in POOLED:
            # Read-only steps run in the local service's warm pool while it runs.
            extra["service"] = settings.data_dir
        self.sandbox = open_sandbox(options.backend, workspace, settings.sandbox, **extra)
        if not resume:
            self.recorder = RunRecorder(
                settings.data_dir,
                task=task,
                workspace=workspace,
                model=spec or "router",
                new_id=run_id,
                options=options.details,
            )
        self.grants = GrantStore(
            settings.data_dir / "state.db", self.policy.standing_grants(time.time())
        )
        limiter = (
            Limiter(settings.data_dir / "state.db", self.policy.limits)
            if self.policy.limits
            else None
        )
        gate = ApprovalManager(
            self.policy,
            options.approver,
            grants=self.grants,
            context=GateContext(
                self.recorder.run_id,
                str(workspace),
                agent=options.agent_name or f"pid {os.getpid()}",
                task=task,
            ),
            record=self.recorder.record,
            report=options.report,
            limiter=limiter,
        )
        # The router counts each request (retries and fallbacks too) against
        # the run's model-call limits, before it is made.
        self.provider = make_router(
            spec,
            settings,
            self.metrics,
            model_call_limit(gate, options.report),
            notify=options.report,
        )
        if resume:
            # The scripted provider replays by position: skip the turns already taken.
            turns = sum(1 for r in self.records if r.get("type") == "model_turn")
            for group in self.provider.groups.values():
                for d in group.deployments:
                    if isinstance(d.provider, ScriptedProvider):
                        d.provider.position = turns
        apis = [
            OpenApiTools(name, source, open_world_read=self.policy.open_world_read)
            for name, source in settings.openapi.items()
        ]
        self.mcp = [
            self._mcp_tools(name, cfg, settings, options, gate.ctx.agent)
            for name, cfg in settings.mcp.servers.items()
        ]
        self.toolbox = ToolBox([BuiltinTools(self.sandbox), *apis, *self.mcp])
        self.agent = Agent(
            self.provider,
            self.toolbox,
            gate,
            self.recorder,
            budgets=Budgets(
                options.max_steps, settings.agent.max_tokens, settings.agent.max_cost_usd
            ),
            system_prompt=settings.agent.system_prompt,
            report=options.report,
            metrics=self.metrics,
            provider_counts_calls=True,
        )
        self.resuming = resume is not None
        self.options_report = options.report

    def _mcp_tools(
        self,
        name: str,
        cfg: McpServer,
        settings: Settings,
        options: SessionOptions,
        agent_name: str,
    ) -> McpTools:
        """One configured MCP server as a tool source: started in the run's own
        sandbox backend; its questions go to whoever answers the run's
        approvals; its sampling requests to the run's model, through the gate."""
        from luminaguard.mcp.client import McpServerHandle
        from luminaguard.mcp.sampling import SamplingSource, sampler
        from luminaguard.policy.approver import TerminalApprover
        from luminaguard.tools.mcp_tools import McpTools

        asked_by = {"run_id": self.recorder.run_id, "agent": agent_name}
        authorization = None
        if cfg.url and isinstance(options.approver, TerminalApprover):
            # An HTTP server that asks for authorization: the person at the
            # terminal opens the printed address.
            from luminaguard.mcp.oauth import LoopbackAuthorization

            authorization = LoopbackAuthorization(cfg.oauth.redirect_port)
        sample = None
        if cfg.sampling:
            # The agent is made after its tools: these reach it when called.
            source = SamplingSource(name, self.provider, lambda turn: self.agent.count(turn))
            sample = sampler(source, lambda call, src: self.agent.serve(call, src))
        handle = McpServerHandle(
            name,
            cfg,
            workspace=self.workspace,
            data_dir=settings.data_dir,
            sandbox=settings.sandbox,
            cache_dir=settings.mcp.cache_dir,
            backend=self.sandbox,
            elicit=functools.partial(options.approver.elicit, name, context=asked_by),
            sample=sample,
            authorization=authorization,
            on_progress=lambda tool, done, total, message: options.report(
                "tool_progress",
                {
                    "tool": f"mcp:{name}/{tool}",
                    "progress": done,
                    "total": total,
                    "message": message,
                },
            ),
        )
        return McpTools(handle, open_world_read=self.policy.open_world_read)

    @property
    def run_id(self) -> str:
        return self.recorder.run_id

    async def run(self) -> RunResult:
        await self._connect()
        try:
            return await self._run()
        finally:
            await self._disconnect()

    async def chat(
        self, ask: Callable[[], Awaitable[str | None]], *, told: Callable[[RunEnded], None]
    ) -> RunResult:
        """An interactive run: the task is the first message; after each turn
        ``told`` hears how it ended, and ``ask`` gives the next message (None:
        the person is done). One journal, every call through the same gate."""
        await self._connect()
        try:
            text: str | None = self.task
            outcome: RunEnded = Finished("")
            while text is not None:
                outcome = await self.agent.turn(text)
                told(outcome)
                text = await ask()
            return self.agent.end(outcome)
        finally:
            await self._disconnect()

    async def _disconnect(self) -> None:
        """Close every MCP server at once: each may wait out a grace period
        before it is stopped (the SDK's, 2 s, for one that outlives its stdin)."""
        await asyncio.gather(*(source.server.close() for source in self.mcp))

    async def _connect(self) -> None:
        for source in self.mcp:
            server = source.server
            note = (
                ("sandboxed, CAN WRITE THE WORKSPACE" if server.writes else "sandboxed, read-only")
                if server.sandboxed
                else ("over HTTP" if server.cfg.url else "ON THE HOST, NOT SANDBOXED")
            )
            try:
                await source.connect()
            except ToolError as exc:
                # One broken server must not sink the run: its tools are
                # simply not offered, and the person and the journal say why.
                self.recorder.record(
                    "mcp_server", {"name": server.name, "mode": note, "error": str(exc)}
                )
                self.options_report(
                    "mcp_server", {"name": server.name, "mode": note, "tools": 0, "error": str(exc)}
                )
                continue
            self.recorder.record(
                "mcp_server", {"name": server.name, "mode": note, "tools": len(source.tools)}
            )
            self.options_report(
                "mcp_server", {"name": server.name, "mode": note, "tools": len(source.tools)}
            )
        self.toolbox.refresh()

    async def advance(self) -> RunResult | None:
        """One step of the run (``Agent.advance``), its MCP servers connected
        for it: the result once the run has ended, else None."""
        await self._connect()
        try:
            if self.resuming:
                self.agent.restore(self.records)
            else:
                self.agent.begin(self.task)
            return await self.agent.advance()
        finally:
            await self._disconnect()

    async def _run(self) -> RunResult:
        return await (
            self.agent.resume(self.records) if self.resuming else self.agent.run(self.task)
        )

    def close(self) -> None:
        self.recorder.close()
        self.sandbox.close()
        self.grants.close()
        self.metrics.close()
