from __future__ import annotations

import asyncio
import io
import re
import time
from pathlib import Path
from typing import Any

import pytest

from luminaguard.core.card import DiffCard
from luminaguard.core.grant import Grant
from luminaguard.core.risk import Assessment, Risk, strictest
from luminaguard.errors import ConfigError
from luminaguard.messages import ToolCall
from luminaguard.policy.approver import TerminalApprover, Unattended
from luminaguard.policy.gate import ApprovalManager, GateContext
from luminaguard.policy.grants import GrantStore
from luminaguard.policy.policyfile import Policy, effective_assessment, load_policy
from luminaguard.protocols import ApprovalRequest, Approver, Decision
from luminaguard.ui.cards import render_card_text

CALL = ToolCall("c1", "shell", {"command": "make"})


def card(risk: Risk, command: str = "make", effects: dict[str, Any] | None = None) -> DiffCard:
    return DiffCard(
        "shell",
        {"command": command},
        Assessment.of(risk, "rule", "why"),
        "command",
        effects or {"exit_code": 0},
    )


class Recorder:
    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        self.records.append((kind, data))


def manager(
    tmp_path: Path, policy: Policy, approver: Approver | None = None
) -> tuple[ApprovalManager, Recorder]:
    rec = Recorder()
    m = ApprovalManager(
        policy,
        approver or Unattended(),
        grants=GrantStore(tmp_path / "state.db", policy.standing_grants(time.time())),
        context=GateContext("run-1", "/ws"),
        record=rec,
        report=lambda e, d: None,
    )
    return m, rec


def decide(m: ApprovalManager, c: DiffCard) -> Decision:
    return asyncio.run(m.decide(CALL, c))


def test_by_default_only_green_runs_and_nothing_else_runs_unattended(tmp_path: Path) -> None:
    m, _ = manager(tmp_path, Policy())
    for risk in (Risk.YELLOW, Risk.ORANGE, Risk.RED):
        d = decide(m, card(risk))
        assert not d.approved and d.by == "unattended"


def test_the_policy_file_sets_levels_denials_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(
        'auto_approve = ["green", "yellow"]\ndeny = ["red"]\non_denial = "stop"\n[risk]\nshell = "yellow"\n'
    )
    policy = load_policy(path)
    m, _ = manager(tmp_path, policy)
    assert decide(m, card(Risk.YELLOW)).approved
    red = decide(m, card(Risk.RED))
    assert not red.approved and red.stop and str(path) in red.by
    assert (
        effective_assessment(policy, CALL, Assessment.of(Risk.ORANGE, "shell", "x")).risk
        == Risk.YELLOW
    )
    # An override never lowers what the arguments made RED.
    assert (
        effective_assessment(policy, CALL, Assessment.of(Risk.RED, "path-outside", "x")).risk
        == Risk.RED
    )


class Person:
    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        self.asked = 0

    async def decide(self, request: ApprovalRequest) -> Decision:
        self.asked += 1
        return self.decision


def test_a_grant_made_at_approval_answers_the_next_matching_card(tmp_path: Path) -> None:
    grant = Grant("shell", Risk.ORANGE, time.time() + 3600, pattern="make*")
    person = Person(Decision(True, "alice", "ok", grant=grant, principal="alice"))
    m, rec = manager(tmp_path, Policy(), person)
    assert decide(m, card(Risk.ORANGE)).approved
    second = decide(m, card(Risk.ORANGE, "make test"))
    assert second.approved and second.by.startswith("grant ")
    assert person.asked == 1
    assert [k for k, _ in rec.records] == ["grant"]
    # Not covered: another command, or a higher level: the person is asked again.
    decide(m, card(Risk.ORANGE, "rm -rf x"))
    decide(m, card(Risk.RED, "make"))
    assert person.asked == 3


def test_a_red_grant_lives_only_for_its_run(tmp_path: Path) -> None:
    grant = Grant("shell", Risk.RED, time.time() + 3600)
    m, rec = manager(
        tmp_path, Policy(), Person(Decision(True, "alice", "ok", grant=grant, principal="alice"))
    )
    decide(m, card(Risk.RED))
    stored = rec.records[0][1]
    assert stored["run_id"] == "run-1"
    other = GrantStore(tmp_path / "state.db").match(card(Risk.RED), workspace="/ws", run_id="run-2")
    assert other is None


def test_grants_expire_and_respect_hosts() -> None:
    g = Grant("shell", Risk.RED, until=1000.0, hosts=("pypi.org",))
    net = card(Risk.RED, effects={"network": [{"host": "pypi.org", "port": 443}]})
    assert g.covers(net, workspace="/ws", run_id="r", now=999.0)
    assert not g.covers(net, workspace="/ws", run_id="r", now=1000.0)
    evil = card(Risk.RED, effects={"network": [{"host": "evil.example", "port": 443}]})
    assert not g.covers(evil, workspace="/ws", run_id="r", now=1.0)


def test_standing_grants_from_the_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(
        '[[grants]]\ntool = "shell"\npattern = "pytest*"\nmax_risk = "orange"\nhours = 8\n'
    )
    m, _ = manager(tmp_path, load_policy(path))
    assert decide(m, card(Risk.ORANGE, "pytest -q")).approved
    assert not decide(m, card(Risk.ORANGE, "make")).approved


def test_an_approval_by_someone_without_the_right_is_refused_and_recorded(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(
        '[roles.reviewer]\nmax_risk = "orange"\n[principals.bob]\nrole = "reviewer"\n[principals.root]\nrole = "admin"\n[roles.admin]\nmax_risk = "red"\n'
    )
    policy = load_policy(path)
    m, rec = manager(tmp_path, policy, Person(Decision(True, "bob", "looks fine", principal="bob")))
    d = decide(m, card(Risk.RED))
    assert not d.approved and "may approve up to orange" in d.reason
    assert rec.records[0][0] == "approval_refused"
    assert decide(m, card(Risk.ORANGE)).approved
    m2, _ = manager(tmp_path, policy, Person(Decision(True, "mallory", "yes", principal="mallory")))
    assert "not a principal" in decide(m2, card(Risk.YELLOW)).reason


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('auto_approve = ["purple"]', "unknown risk level 'purple'"),
        ('on_denial = "explode"', "on_denial"),
        ("colour = 1", "unknown key colour"),
        ("auto_approve = [", "not valid TOML"),
        ('[[grants]]\ntool = "shell"\n', "grants.0.max_risk"),
        ('[[limits]]\nscope = "galaxy"\ncapacity = 1\n', "limits.0.scope"),
    ],
)
def test_a_bad_policy_file_is_one_clear_error(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected):
        load_policy(path)


def test_a_missing_policy_file_is_an_error_not_a_fallback(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_policy(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("answers", "approved", "stop", "grant"),
    [
        ("y\n", True, False, False),
        ("g\n", True, False, True),
        ("n\nbad idea\n", False, False, False),
        ("q\n", False, True, False),
        ("maybe\nyes\n", True, False, False),
        ("", False, True, False),
    ],
)
def test_the_terminal_prompt(answers: str, approved: bool, stop: bool, grant: bool) -> None:
    out = io.StringIO()
    approver = TerminalApprover(
        io.StringIO(answers), out, principal="alice", render=render_card_text
    )
    d = asyncio.run(approver.decide(ApprovalRequest(CALL, card(Risk.ORANGE))))
    assert (d.approved, d.stop, d.grant is not None) == (approved, stop, grant)
    assert d.principal == "alice"
    assert "🟠 ORANGE" in out.getvalue() and "$ make" in out.getvalue()
    if answers.startswith("n"):
        assert d.reason == "bad idea"


def test_strictest_takes_the_highest_level_and_its_reasons() -> None:
    a = Assessment.of(Risk.YELLOW, "y", "new file")
    b = Assessment.of(Risk.ORANGE, "o", "overwrite")
    c = Assessment.of(Risk.ORANGE, "o2", "delete")
    s = strictest([a, b, c])
    assert s.risk == Risk.ORANGE
    assert [r.rule for r in s.reasons] == ["o", "o2"]
    assert strictest([]).risk == Risk.RED


def test_the_card_hash_is_stable_and_covers_the_content() -> None:
    a, b = card(Risk.ORANGE), card(Risk.ORANGE)
    assert a.hash == b.hash and len(a.hash) == 64
    assert card(Risk.ORANGE, "make x").hash != a.hash
    moved = DiffCard(
        a.tool, a.arguments, a.assessment, a.kind, a.effects, context={"agent": "other"}
    )
    assert moved.hash == a.hash
    assert DiffCard.from_dict(a.to_dict()).hash == a.hash


def test_an_mcp_elicitation_is_answered_at_the_terminal_with_defaults_and_types() -> None:
    schema = {
        "properties": {
            "name": {"type": "string", "default": "John"},
            "age": {"type": "integer"},
            "ok": {"type": "boolean", "default": False},
            "tier": {"type": "string", "enum": ["a", "b"]},
        }
    }
    out = io.StringIO()
    approver = TerminalApprover(io.StringIO("y\n\n42\nyes\nb\n"), out, render=render_card_text)
    action, content = asyncio.run(approver.elicit("srv", "Who are you?", schema))
    assert action == "accept"
    assert content == {"name": "John", "age": 42, "ok": True, "tier": "b"}
    assert "MCP server srv asks: Who are you?" in out.getvalue() and "tier (a/b)" in out.getvalue()
    declined = asyncio.run(
        TerminalApprover(io.StringIO("n\n"), io.StringIO(), render=render_card_text).elicit(
            "srv", "?", schema
        )
    )
    assert declined == ("decline", None)


def test_a_wrong_answer_at_the_terminal_is_asked_again_and_end_of_input_cancels() -> None:
    schema = {
        "properties": {"age": {"type": "integer", "minimum": 1, "maximum": 120}},
        "required": ["age"],
    }
    out = io.StringIO()
    approver = TerminalApprover(io.StringIO("y\nold\n300\n42\n"), out, render=render_card_text)
    assert asyncio.run(approver.elicit("srv", "Age?", schema)) == ("accept", {"age": 42})
    assert "field 'age' must be integer, not 'old'" in out.getvalue()
    assert "field 'age' must be between 1 and 120" in out.getvalue()
    gone = TerminalApprover(io.StringIO("y\n"), io.StringIO(), render=render_card_text)
    assert asyncio.run(gone.elicit("srv", "Age?", schema)) == ("cancel", None)


def test_elicitation_answers_are_typed_and_checked_against_the_schema() -> None:
    from luminaguard.policy.inbox import answer_content

    schema = {
        "properties": {
            "name": {"type": "string"},
            "pick": {"type": "string", "oneOf": [{"const": "a", "title": "A"}, {"const": "b"}]},
            "tags": {
                "type": "array",
                "items": {"type": "string", "enum": ["x", "y", "z"]},
                "maxItems": 2,
                "default": ["x"],
            },
            "ratio": {"type": "number", "default": 0.5},
        },
        "required": ["name"],
    }
    assert answer_content(schema, {"name": "n", "pick": "b", "tags": "y, z"}) == {
        "name": "n",
        "pick": "b",
        "tags": ["y", "z"],
        "ratio": 0.5,
    }
    for fields, message in [
        ({}, "field 'name' is required"),
        ({"name": "n", "nope": "1"}, "unknown field 'nope'"),
        ({"name": "n", "pick": "c"}, "must be one of a, b"),
        ({"name": "n", "tags": "x,y,z"}, "takes at most 2 values"),
        ({"name": "n", "tags": "w"}, "must be one of x, y, z"),
        ({"name": "n", "ratio": "half"}, "must be number"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            answer_content(schema, fields)
