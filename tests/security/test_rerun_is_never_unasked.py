"""What is committed is what was shown: a command whose preview needed the
network cannot be committed from the preview; it would run again for real, so
it is RED, says so first on its card, and is never approved without asking,
whatever the policy's levels or grants."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from luminaguard.config import SandboxSettings
from luminaguard.core.grant import Grant
from luminaguard.core.risk import Risk
from luminaguard.messages import ToolCall
from luminaguard.policy.approver import Unattended
from luminaguard.policy.gate import ApprovalManager, GateContext
from luminaguard.policy.grants import GrantStore
from luminaguard.policy.policyfile import Policy
from luminaguard.sandbox.bwrap import BwrapSandbox
from luminaguard.tools.builtin import BuiltinTools
from luminaguard.ui.cards import render_card_text


def test_a_command_that_needs_the_network_is_asked_even_where_the_policy_allows_everything(
    workspace: Path, tmp_path: Path, host_web: int
) -> None:
    records: list[tuple[str, dict[str, Any]]] = []
    policy = Policy(auto_approve=frozenset(Risk))
    everything = Grant("shell", Risk.RED, time.time() + 3600)
    gate = ApprovalManager(
        policy,
        Unattended(),
        grants=GrantStore(tmp_path / "state.db", (everything,)),
        context=GateContext("run-1", str(workspace)),
        record=lambda kind, data: records.append((kind, data)),
        report=lambda event, data: None,
    )
    sandbox = BwrapSandbox(
        workspace, SandboxSettings(timeout_s=30, network=f"test:127.0.0.1:{host_web}", pool_size=0)
    )
    command = f"curl -s -o got.html http://127.0.0.1:{host_web}/ ; echo fetched"
    result = asyncio.run(
        gate.run(ToolCall("c1", "shell", {"command": command}), BuiltinTools(sandbox))
    )
    assert result.data.get("denied"), result.output
    assert not (workspace / "got.html").exists(), "it ran for real without anyone asked"
    card = next(d["card"] for kind, d in records if kind == "tool_call")
    assert card["risk"] == "red" and card["effects"]["rerun"] is True
    assert any(r.startswith("rerun:") for r in card["reasons"])
    from luminaguard.core.card import DiffCard

    shown = render_card_text(DiffCard.from_dict(card), width=200)
    first = shown.splitlines()[1]
    assert "runs AGAIN" in first, shown


class Person:
    """Answers each card in turn, and keeps the cards it saw."""

    def __init__(self, *answers: bool) -> None:
        self.answers = list(answers)
        self.cards: list[Any] = []

    async def decide(self, request: Any) -> Any:
        from luminaguard.protocols import Decision

        self.cards.append(request.card)
        ok = self.answers.pop(0)
        return Decision(ok, "alice", "ok" if ok else "no", principal=None)


def live_gate(tmp_path: Path, person: Person) -> ApprovalManager:
    return ApprovalManager(
        Policy(),
        person,
        grants=GrantStore(tmp_path / "state.db", ()),
        context=GateContext("run-1", "/nowhere"),
        record=lambda kind, data: None,
        report=lambda event, data: None,
    )


COMMAND = "curl -s -o got.html http://127.0.0.1:{port}/ ; echo fetched"


def test_an_approved_rerun_runs_live_in_a_layer_and_its_real_changes_are_a_second_card(
    workspace: Path, tmp_path: Path, host_web: int
) -> None:
    person = Person(True, True)
    sandbox = BwrapSandbox(
        workspace, SandboxSettings(timeout_s=30, network=f"test:127.0.0.1:{host_web}", pool_size=0)
    )
    call = ToolCall("c1", "shell", {"command": COMMAND.format(port=host_web)})
    result = asyncio.run(live_gate(tmp_path, person).run(call, BuiltinTools(sandbox)))
    assert not result.is_error, result.output
    first, second = person.cards
    # The first card could not show the download; the second shows what the
    # real run did, and only that was committed.
    assert first.effects["rerun"] is True
    assert [r["blocked"] for r in first.effects["network"]] == [True]
    assert second.effects.get("live") is True and second.effects["created"] == ["got.html"]
    assert [r["blocked"] for r in second.effects["network"]] == [False]
    assert "RAN FOR REAL" in render_card_text(second, width=200).splitlines()[1]
    assert (workspace / "got.html").read_text() == "hello from the host\n"


def test_a_denied_second_card_commits_nothing_of_the_real_run(
    workspace: Path, tmp_path: Path, host_web: int
) -> None:
    person = Person(True, False)
    sandbox = BwrapSandbox(
        workspace, SandboxSettings(timeout_s=30, network=f"test:127.0.0.1:{host_web}", pool_size=0)
    )
    call = ToolCall("c1", "shell", {"command": COMMAND.format(port=host_web)})
    result = asyncio.run(live_gate(tmp_path, person).run(call, BuiltinTools(sandbox)))
    assert result.data.get("denied") and len(person.cards) == 2
    assert not (workspace / "got.html").exists(), "the real run's file changes landed unapproved"
