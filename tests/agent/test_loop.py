from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from luminaguard.agent.loop import Agent, RunResult, model_call_limit
from luminaguard.audit.journal import read_records, verify
from luminaguard.audit.run import RunRecorder
from luminaguard.config import SandboxSettings
from luminaguard.core.risk import Risk
from luminaguard.llm.scripted import Playbook, ScriptedProvider
from luminaguard.messages import AssistantTurn, Message, ToolSpec
from luminaguard.policy.approver import Unattended
from luminaguard.policy.gate import ApprovalManager, GateContext
from luminaguard.policy.grants import GrantStore
from luminaguard.policy.policyfile import Policy
from luminaguard.policy.ratelimit import Limit, Limiter
from luminaguard.protocols import ApprovalRequest, Approver, Decision, Provider
from luminaguard.sandbox.bwrap import BwrapSandbox
from luminaguard.tools.builtin import BuiltinTools


def run_agent(
    workspace: Path,
    data_dir: Path,
    steps: list[dict[str, Any]],
    *,
    policy: Policy | None = None,
    ask: Approver | None = None,
    max_steps: int = 10,
    provider: Provider | None = None,
    router: Callable[[Callable[[str], None]], Provider] | None = None,
) -> tuple[RunResult, list[dict[str, Any]]]:
    """``router``: builds the provider from the run's per-request call-limit hook."""
    policy = policy or Policy()
    if provider is None and router is None:
        provider = ScriptedProvider(Playbook.model_validate({"steps": steps}))
    recorder = RunRecorder(data_dir, task="test task", workspace=workspace, model="scripted/test")
    sandbox = BwrapSandbox(workspace, SandboxSettings(timeout_s=30))
    grants = GrantStore(data_dir / "state.db")
    gate = ApprovalManager(
        policy,
        ask or Unattended(),
        grants=grants,
        context=GateContext(recorder.run_id, str(workspace)),
        record=recorder.record,
        report=lambda e, d: None,
        limiter=Limiter(data_dir / "state.db", policy.limits) if policy.limits else None,
    )
    if router is not None:
        provider = router(model_call_limit(gate, lambda e, d: None))
    assert provider is not None
    agent = Agent(
        provider,
        BuiltinTools(sandbox),
        gate,
        recorder,
        max_steps=max_steps,
        provider_counts_calls=router is not None,
    )
    try:
        result = asyncio.run(agent.run("test task"))
    finally:
        sandbox.close()
        grants.close()
    return result, read_records(Path(result.journal))


def results(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r["data"] for r in records if r["type"] == "tool_result"]


def test_a_run_finishes_when_the_model_answers_without_tools(
    workspace: Path, data_dir: Path
) -> None:
    (workspace / "a.txt").write_text("hello")
    result, records = run_agent(
        workspace,
        data_dir,
        [
            {"tool_calls": [{"name": "read_file", "arguments": {"path": "a.txt"}}]},
            {"content": "It says hello."},
        ],
    )
    assert result.outcome == "finished"
    assert result.message == "It says hello."
    assert result.steps == 2
    assert results(records)[0]["output"] == "hello"
    assert records[-1]["type"] == "run_finished" and records[-1]["data"]["outcome"] == "finished"
    assert verify(Path(result.journal)) == []


def test_the_step_limit_ends_a_run_that_does_not_finish(workspace: Path, data_dir: Path) -> None:
    step = {"tool_calls": [{"name": "list_dir", "arguments": {}}]}
    result, records = run_agent(workspace, data_dir, [step] * 5, max_steps=3)
    assert result.outcome == "limits_exceeded"
    assert "step limit of 3" in result.message
    assert len([r for r in records if r["type"] == "model_turn"]) == 3


def test_without_anyone_to_ask_a_write_is_denied_and_the_agent_is_told(
    workspace: Path, data_dir: Path
) -> None:
    result, records = run_agent(
        workspace,
        data_dir,
        [
            {
                "tool_calls": [
                    {"name": "write_file", "arguments": {"path": "new.txt", "content": "x"}}
                ]
            },
            {"content": "I could not write."},
        ],
    )
    assert result.outcome == "finished"
    assert not (workspace / "new.txt").exists()
    observed = results(records)[0]
    assert observed["is_error"] and observed["output"].startswith("denied:")
    assert "no one to ask" in observed["output"]
    decision = next(r["data"] for r in records if r["type"] == "decision")
    assert (decision["approved"], decision["by"]) == (False, "unattended")
    card = next(r["data"] for r in records if r["type"] == "tool_call")
    assert decision["card_hash"] == card["card_hash"]


class Refuse:
    def __init__(self, stop: bool) -> None:
        self.stop = stop
        self.asked: list[ApprovalRequest] = []

    async def decide(self, request: ApprovalRequest) -> Decision:
        self.asked.append(request)
        return Decision(False, "tester", "not today", stop=self.stop)


def test_a_denial_that_stops_the_run_ends_it_as_denied(workspace: Path, data_dir: Path) -> None:
    refuse = Refuse(stop=True)
    result, _ = run_agent(
        workspace,
        data_dir,
        [
            {"tool_calls": [{"name": "delete_file", "arguments": {"path": "keep.txt"}}]},
            {"content": "never reached"},
        ],
        ask=refuse,
    )
    assert result.outcome == "denied"
    assert "not today" in result.message
    assert result.steps == 1
    assert refuse.asked[0].assessment.risk == Risk.ORANGE


def test_a_denial_by_the_policy_level_never_reaches_the_person(
    workspace: Path, data_dir: Path
) -> None:
    refuse = Refuse(stop=False)
    policy = Policy(deny=frozenset({Risk.ORANGE}), on_denial="stop")
    result, _ = run_agent(
        workspace,
        data_dir,
        [{"tool_calls": [{"name": "shell", "arguments": {"command": "make"}}]}, {"content": "x"}],
        policy=policy,
        ask=refuse,
    )
    assert result.outcome == "denied"
    assert refuse.asked == []


def test_approved_actions_run_in_the_sandbox_and_change_the_workspace(
    workspace: Path, data_dir: Path
) -> None:
    policy = Policy(auto_approve=frozenset({Risk.GREEN, Risk.YELLOW, Risk.ORANGE}))
    result, records = run_agent(
        workspace,
        data_dir,
        [
            {
                "tool_calls": [
                    {"name": "write_file", "arguments": {"path": "n.txt", "content": "one\n"}}
                ]
            },
            {
                "tool_calls": [
                    {"name": "shell", "arguments": {"command": "echo two >> n.txt; id -u"}}
                ]
            },
            {"content": "ok"},
        ],
        policy=policy,
    )
    assert result.outcome == "finished"
    assert (workspace / "n.txt").read_text() == "one\ntwo\n"
    shell = results(records)[1]
    assert "1000" in shell["output"]
    assert shell["data"]["changes"]["modified"] == ["n.txt"]


def test_malformed_tool_arguments_become_an_observation_not_a_crash(
    workspace: Path, data_dir: Path
) -> None:
    result, records = run_agent(
        workspace,
        data_dir,
        [
            {
                "tool_calls": [
                    {"name": "read_file", "arguments": "{not json"},
                    {"name": "read_file", "arguments": {"path": 3}},
                    {"name": "read_file", "arguments": {}},
                    {"name": "read_file", "arguments": ["a"]},
                    {"name": "read_file", "arguments": {"path": "a", "bogus": 1}},
                    {"name": "launch_rockets", "arguments": {}},
                ]
            },
            {"content": "giving up"},
        ],
    )
    assert result.outcome == "finished"
    outs = [r["output"] for r in results(records)]
    assert len(outs) == 6
    assert all(o.startswith("error:") for o in outs)
    assert "not valid JSON" in outs[0]
    assert "path" in outs[1] and "path" in outs[2]
    assert "JSON object" in outs[3]
    assert "bogus" in outs[4]
    assert "unknown tool 'launch_rockets'" in outs[5]


class JournalWatchingProvider:
    """Checks, each time it is asked, that the previous step is already on disk."""

    name = "watcher"

    def __init__(self, inner: Provider, journal_dir: Path) -> None:
        self.inner = inner
        self.journal_dir = journal_dir
        self.seen: list[list[str]] = []

    async def complete(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec], **kwargs: Any
    ) -> AssistantTurn:
        [journal] = self.journal_dir.glob("*.jsonl")
        lines = journal.read_text().splitlines()
        self.seen.append([json.loads(line)["type"] for line in lines])
        return await self.inner.complete(messages, tools, **kwargs)


def test_every_step_is_journaled_before_the_next_starts(workspace: Path, data_dir: Path) -> None:
    (workspace / "a").write_text("x")
    inner = ScriptedProvider(
        Playbook.model_validate(
            {
                "steps": [
                    {"tool_calls": [{"name": "read_file", "arguments": {"path": "a"}}]},
                    {"content": "done"},
                ]
            }
        )
    )
    watcher = JournalWatchingProvider(inner, data_dir / "runs")
    result, _ = run_agent(workspace, data_dir, [], provider=watcher)
    assert result.outcome == "finished"
    assert watcher.seen[0][-1] == "user"
    assert watcher.seen[1][-4:] == ["model_turn", "tool_call", "decision", "tool_result"]


def test_an_approved_shell_command_is_committed_from_its_preview(
    workspace: Path, data_dir: Path
) -> None:
    (workspace / "counter").write_text("")
    policy = Policy(auto_approve=frozenset({Risk.GREEN, Risk.YELLOW, Risk.ORANGE}))
    _result, records = run_agent(
        workspace,
        data_dir,
        [
            {
                "tool_calls": [
                    {
                        "name": "shell",
                        "arguments": {"command": "echo ran >> counter; echo new > made.txt"},
                    }
                ]
            },
            {"content": "ok"},
        ],
        policy=policy,
    )
    # Run once (in the preview) and committed: not run a second time.
    assert (workspace / "counter").read_text() == "ran\n"
    assert (workspace / "made.txt").read_text() == "new\n"
    card = next(r["data"]["card"] for r in records if r["type"] == "tool_call")
    assert card["kind"] == "command" and card["effects"]["created"] == ["made.txt"]
    assert [m["path"] for m in card["effects"]["modified"]] == ["counter"]


def test_a_denied_command_leaves_the_workspace_untouched(workspace: Path, data_dir: Path) -> None:
    (workspace / "keep.txt").write_text("keep")
    _result, records = run_agent(
        workspace,
        data_dir,
        [
            {"tool_calls": [{"name": "shell", "arguments": {"command": "rm keep.txt"}}]},
            {"content": "ok"},
        ],
    )
    assert (workspace / "keep.txt").exists()
    card = next(r["data"]["card"] for r in records if r["type"] == "tool_call")
    assert card["effects"]["deleted"] == ["keep.txt"]


def test_a_green_command_runs_and_reads_the_workspace(workspace: Path, data_dir: Path) -> None:
    (workspace / "a.txt").write_text("alpha\n")
    _result, records = run_agent(
        workspace,
        data_dir,
        [
            {"tool_calls": [{"name": "shell", "arguments": {"command": "cat a.txt | wc -l"}}]},
            {"content": "ok"},
        ],
    )
    out = results(records)[0]["output"]
    assert "exit code: 0" in out and "1" in out
    decision = next(r["data"] for r in records if r["type"] == "decision")
    assert decision["approved"] and "green" in decision["reason"]


def test_a_rate_limit_is_a_clear_error_to_the_agent(workspace: Path, data_dir: Path) -> None:
    policy = Policy(limits=(Limit(scope="tool", name="list_dir", capacity=1),))
    step = {"tool_calls": [{"name": "list_dir", "arguments": {}}]}
    _result, records = run_agent(
        workspace, data_dir, [step, step, {"content": "ok"}], policy=policy
    )
    outs = [r["output"] for r in results(records)]
    assert not outs[0].startswith("error")
    assert outs[1].startswith("error: rate limit reached for tool list_dir calls")


def test_a_model_call_quota_ends_the_run_as_limits_exceeded(
    workspace: Path, data_dir: Path
) -> None:
    policy = Policy(limits=(Limit(scope="run", on="models", capacity=1),))
    step = {"tool_calls": [{"name": "list_dir", "arguments": {}}]}
    result, _ = run_agent(workspace, data_dir, [step, {"content": "never"}], policy=policy)
    assert result.outcome == "limits_exceeded"
    assert "rate limit reached for run * calls" in result.message
    assert result.steps == 2


def test_a_per_provider_call_limit_counts_each_request_the_router_makes(
    workspace: Path, data_dir: Path
) -> None:
    from luminaguard.llm.router import Router

    step = {"tool_calls": [{"name": "list_dir", "arguments": {}}]}
    playbook = Playbook.model_validate({"steps": [step, step, {"content": "never"}]})
    policy = Policy(limits=(Limit(scope="provider", name="scripted", capacity=2, refill_per_s=0),))
    result, records = run_agent(
        workspace,
        data_dir,
        [],
        policy=policy,
        router=lambda hook: Router.single(
            "scripted/test", lambda spec: ScriptedProvider(playbook), before_attempt=hook
        ),
    )
    assert result.outcome == "limits_exceeded"
    assert "rate limit reached for provider scripted calls" in result.message
    assert len([r for r in records if r["type"] == "model_turn"]) == 2
