"""Workflow versioning: today's `AgentRun` replays a history recorded by an
earlier one (three cards, each approved through the Update, then finished).
A change to the workflow's commands that is not behind `workflow.patched`
fails here. The history's payloads are sealed with the test key below."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from luminaguard.fleet.codec import data_converter
from luminaguard.fleet.data import RunInput
from luminaguard.fleet.workflow import AgentRun

RECORDED = Path(__file__).parent / "histories" / "agent_run.json"
TEST_KEY = base64.b64decode("bHVtaW5hZ3VhcmQgZmxlZXQgcmVwbGF5IHRlc3QgayE=")


def test_the_workflow_replays_a_recorded_history() -> None:
    history = WorkflowHistory.from_json("recorded", RECORDED.read_text())
    replayer = Replayer(workflows=[AgentRun], data_converter=data_converter(TEST_KEY))
    result = asyncio.run(replayer.replay_workflow(history, raise_on_replay_failure=False))
    assert result.replay_failure is None, result.replay_failure


@workflow.defn(name="AgentRun")
class Changed(AgentRun):
    """AgentRun with a timer before its first step: a change not behind `patched`."""

    @workflow.run
    async def run(self, run: RunInput) -> dict[str, Any]:
        await workflow.sleep(1)
        return await super().run(run)


def test_a_changed_workflow_fails_the_replay() -> None:
    """The replay test can fail: a workflow that schedules its steps differently does."""
    history = WorkflowHistory.from_json("recorded", RECORDED.read_text())
    replayer = Replayer(workflows=[Changed], data_converter=data_converter(TEST_KEY))
    result = asyncio.run(replayer.replay_workflow(history, raise_on_replay_failure=False))
    assert result.replay_failure is not None
