from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

from luminaguard.errors import ConfigError
from luminaguard.messages import ToolCall
from luminaguard.policy.approver import PolicyApprover, TerminalApprover, effective_assessment
from luminaguard.policy.policyfile import Policy, load_policy
from luminaguard.policy.risk import Assessment, Risk, strictest
from luminaguard.protocols import ApprovalRequest, Decision

CALL = ToolCall("c1", "shell", {"command": "make"})


def request(risk: Risk) -> ApprovalRequest:
    return ApprovalRequest(CALL, Assessment.of(risk, "rule", "why"), "$ make")


def decide(approver: PolicyApprover, risk: Risk) -> Decision:
    return asyncio.run(approver.decide(request(risk)))


def test_by_default_only_green_runs_and_nothing_else_runs_unattended() -> None:
    approver = PolicyApprover(Policy(), ask=None)
    assert decide(approver, Risk.GREEN).approved
    for risk in (Risk.YELLOW, Risk.ORANGE, Risk.RED):
        d = decide(approver, risk)
        assert not d.approved and d.by == "unattended"


def test_the_policy_file_sets_levels_and_denials(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(
        'auto_approve = ["green", "yellow"]\ndeny = ["red"]\non_denial = "stop"\n[risk]\nshell = "yellow"\n'
    )
    policy = load_policy(path)
    approver = PolicyApprover(policy, ask=None)
    assert decide(approver, Risk.YELLOW).approved
    red = decide(approver, Risk.RED)
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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('auto_approve = ["purple"]', "unknown risk level 'purple'"),
        ('on_denial = "explode"', "on_denial"),
        ("colour = 1", "unknown key colour"),
        ("auto_approve = [", "not valid TOML"),
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
    ("answers", "approved", "stop"),
    [
        ("y\n", True, False),
        ("n\nbad idea\n", False, False),
        ("q\n", False, True),
        ("maybe\nyes\n", True, False),
        ("", False, True),
    ],
)
def test_the_terminal_prompt(answers: str, approved: bool, stop: bool) -> None:
    out = io.StringIO()
    approver = PolicyApprover(Policy(), TerminalApprover(io.StringIO(answers), out))
    d = decide(approver, Risk.ORANGE)
    assert (d.approved, d.stop) == (approved, stop)
    assert "🟠 ORANGE  shell" in out.getvalue()
    assert "$ make" in out.getvalue()
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
