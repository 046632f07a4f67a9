"""Grants are as narrow as what the person saw: `g` grants the exact command,
a pattern is matched against each simple command of the parsed script, a
grant for one reason never covers another, ORANGE and RED grants live for
their run, and nothing that will run again for real is answered in advance."""

from __future__ import annotations

import time
from pathlib import Path

from luminaguard.core.card import DiffCard
from luminaguard.core.grant import Grant, new_grant
from luminaguard.core.risk import Assessment, Reason, Risk
from luminaguard.policy.grants import GrantStore
from luminaguard.policy.shell import simple_commands


def card(command: str, risk: Risk = Risk.ORANGE, *rules: str, **effects: object) -> DiffCard:
    reasons = tuple(Reason(r, "because") for r in (rules or ("changes-files",)))
    return DiffCard(
        "shell", {"command": command}, Assessment(risk, reasons), "command", dict(effects)
    )


def match(store: GrantStore, c: DiffCard, run_id: str = "run-1") -> Grant | None:
    return store.match(c, workspace="/ws", run_id=run_id)


def test_a_grant_from_the_prompt_covers_exactly_the_command_it_was_made_on(
    tmp_path: Path,
) -> None:
    store = GrantStore(tmp_path / "state.db")
    store.add(new_grant(card("sed -i s/a/b/ notes.md"), hours=8))
    assert match(store, card("sed -i s/a/b/ notes.md")) is not None
    for other in ("rm -rf src", "sed -i s/a/b/ notes.md; rm -rf src", "sed -i s/x/y/ other.md"):
        assert match(store, card(other)) is None, other


def test_a_pattern_never_covers_a_script_with_more_in_it_than_the_pattern(tmp_path: Path) -> None:
    store = GrantStore(
        tmp_path / "state.db", (Grant("shell", Risk.ORANGE, time.time() + 60, pattern="pytest*"),)
    )
    assert match(store, card("pytest -q")) is not None
    for script in (
        "pytest -q; rm -rf src",
        "pytest -q && rm -rf src",
        "pytest -q | sh",
        "pytest $(rm -rf src)",
        "pytest -q\nrm -rf src",
        "FOO=1 pytest -q",
        "pytest 'unterminated",
    ):
        assert match(store, card(script)) is None, script


def test_a_grant_for_one_reason_never_covers_another(tmp_path: Path) -> None:
    net = card("curl https://pypi.org/simple/", Risk.RED, "network", network=[{"host": "pypi.org"}])
    store = GrantStore(tmp_path / "state.db")
    g = new_grant(net, hours=1)
    store.add(g)
    assert match(store, net) is not None
    sneaky = card(
        "curl https://pypi.org/simple/",
        Risk.RED,
        "network",
        "dynamic-code",
        network=[{"host": "pypi.org"}],
    )
    assert match(store, sneaky) is None


def test_a_command_that_will_run_again_for_real_is_never_covered(tmp_path: Path) -> None:
    store = GrantStore(tmp_path / "state.db", (Grant("shell", Risk.RED, time.time() + 60),))
    assert match(store, card("make", Risk.RED)) is not None
    assert match(store, card("make", Risk.RED, rerun=True)) is None


def test_the_simple_commands_of_a_script() -> None:
    assert simple_commands("a x; b y && c | d") == ["a x", "b y", "c", "d"]
    assert simple_commands("echo $(rm -rf src)") == ["echo $(rm -rf src)", "rm -rf src"]
    assert simple_commands("echo 'unterminated") is None


def test_the_card_says_what_a_grant_will_cover() -> None:
    g = new_grant(card("make test"), hours=8)
    assert "exactly `make test`" in g.scope_text()


def test_a_grant_covers_only_its_workspace_and_no_suspected_network() -> None:
    g = Grant("shell", Risk.ORANGE, time.time() + 60, workspace="/ws")
    assert g.covers(card("make"), workspace="/ws", run_id="r")
    assert not g.covers(card("make"), workspace="/other", run_id="r")
    suspected = card("make", Risk.ORANGE, network=[{"suspected": True, "evidence": "x"}])
    assert not g.covers(suspected, workspace="/ws", run_id="r")
