from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from pathlib import Path

from luminaguard.core.card import DiffCard
from luminaguard.core.risk import Assessment, Risk
from luminaguard.messages import ToolCall
from luminaguard.policy.inbox import InboxApprover, InboxStore
from luminaguard.policy.permissions import local_user
from luminaguard.protocols import ApprovalRequest
from tests.conftest import LUMINAGUARD, write_playbook


def card(agent: str, step: int = 1, command: str = "make") -> DiffCard:
    return DiffCard(
        "shell",
        {"command": command},
        Assessment.of(Risk.ORANGE, "rule", "why"),
        "command",
        {"exit_code": 0},
        context={
            "agent": agent,
            "task": f"task of {agent}",
            "run_id": f"run-{agent}",
            "step": step,
        },
    )


def test_pending_cards_are_listed_oldest_first_and_decided_once(tmp_path: Path) -> None:
    store = InboxStore(tmp_path / "inbox.db")
    first = store.put(card("a"))
    second = store.put(card("b"))
    assert [p.id for p in store.pending()] == [first, second]
    assert store.decide(first, approved=True, by="alice")
    assert not store.decide(first, approved=False, by="bob"), "a decided card was decided again"
    assert [p.id for p in store.pending()] == [second]


def test_related_cards_of_one_step_are_found_together(tmp_path: Path) -> None:
    store = InboxStore(tmp_path / "inbox.db")
    a1 = store.put(card("a", step=3))
    a2 = store.put(card("a", step=3, command="make test"))
    store.put(card("a", step=4))
    store.put(card("b", step=3))
    assert [p.id for p in store.related(a1)] == [a1, a2]


def test_the_inbox_approver_waits_for_a_decision_from_another_connection(tmp_path: Path) -> None:
    approver = InboxApprover(tmp_path / "inbox.db", timeout_s=10)
    other = InboxStore(tmp_path / "inbox.db")

    async def scenario() -> None:
        waiting = asyncio.create_task(
            approver.decide(ApprovalRequest(ToolCall("c", "shell", {}), card("a")))
        )
        while not other.pending():
            await asyncio.sleep(0.01)
        other.decide(other.pending()[0].id, approved=True, by="alice", reason="fine", grant_hours=2)
        decision = await asyncio.wait_for(waiting, 5)
        assert decision.approved and decision.principal == "alice" and decision.reason == "fine"
        assert decision.grant is not None and decision.grant.until > time.time() + 3600

    asyncio.run(scenario())


def test_no_decision_in_time_is_a_denial(tmp_path: Path) -> None:
    approver = InboxApprover(tmp_path / "inbox.db", timeout_s=0.2)
    d = asyncio.run(approver.decide(ApprovalRequest(ToolCall("c", "shell", {}), card("a"))))
    assert not d.approved and "no decision" in d.reason
    assert InboxStore(tmp_path / "inbox.db").pending() == []


def test_a_run_waits_in_the_inbox_and_a_decision_from_the_cli_lets_it_go_on(
    workspace: Path, tmp_path: Path
) -> None:
    pb = write_playbook(
        tmp_path / "p.json",
        [
            {
                "tool_calls": [
                    {"name": "write_file", "arguments": {"path": "new.txt", "content": "hi"}}
                ]
            },
            {"content": "done"},
        ],
    )
    # alice may decide here: the policy binds this OS user to her.
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "luminaguard"
    config.mkdir(parents=True)
    (config / "policy.toml").write_text(
        f'[roles.owner]\n[principals.alice]\nrole = "owner"\nusers = ["{local_user()}"]\n'
    )
    (config / "luminaguard.toml").write_text('policy = "policy.toml"\n')
    env = dict(os.environ)
    run = subprocess.Popen(
        [
            *LUMINAGUARD,
            "run",
            "write it",
            "--workspace",
            str(workspace),
            "--playbook",
            str(pb),
            "--approver",
            "inbox",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        encoding="utf-8",
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        pending: list[dict[str, object]] = []
        while not pending and time.monotonic() < deadline:
            listed = subprocess.run(
                [*LUMINAGUARD, "approvals", "list", "--json"],
                capture_output=True,
                encoding="utf-8",
                check=True,
            )
            pending = json.loads(listed.stdout)
        assert pending, "the run never reached the inbox"
        item = pending[0]
        assert item["card"]["effects"]["created"] == ["new.txt"]  # type: ignore[index]
        subprocess.run(
            [*LUMINAGUARD, "approvals", "decide", str(item["id"]), "approve", "--as", "alice"],
            check=True,
            capture_output=True,
        )
        out, err = run.communicate(timeout=30)
    finally:
        run.kill()
    assert run.returncode == 0, out + err
    assert (workspace / "new.txt").read_text() == "hi"
    # The run said where its card waited, and how to decide it.
    assert f"waiting for approval of card #{item['id']} in the inbox" in out
    assert f"luminaguard approvals decide {item['id']}" in out
    assert "approved by alice" in out
