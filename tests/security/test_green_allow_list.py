"""GREEN means read-only: every argument that can write, run a program or
change where output goes makes a command more than GREEN. Each case here was
GREEN before (an adversary's way past the Approval Cliff)."""

from __future__ import annotations

import shlex

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from luminaguard.core.risk import Risk
from luminaguard.policy import argrules
from luminaguard.policy.shell import _rules_of, classify_shell
from tests.policy.corpus import RISKY

WAS_GREEN = [
    "awk -f prog.awk data.txt",
    "sed -ni 's/a/b/' data.txt",
    "sed --expression='w out' data.txt",
    "sed -f script.sed data.txt",
    "sed -n '1r /etc/passwd' data.txt",
    "sort --compress-program=sh data.txt",
    "tar -tf a.tar --use-compress-program=sh",
    "git -c core.pager=sh log",
    "git --config-env=core.pager=X log",
    "git --git-dir=/tmp/x log",
    "git log --output=out.txt",
    "git diff --ext-diff",
    "git -c diff.external=sh diff",
    "GIT_PAGER=sh git log",
    "env --split-string='rm -rf src'",
    "LESSOPEN='|sh %s' less data.txt",
    "man -P sh ls",
    "tree -o out.txt",
    "xxd -r hex.txt out.bin",
    "uniq data.txt out.txt",
    "iconv -f utf8 -t ascii -o out.txt data.txt",
    "file -C -m magic",
    "date -s 2020-01-01",
    "hostname evil",
    "LD_PRELOAD=/tmp/x.so ls",
    "PATH=/tmp:$PATH ls",
    "BASH_ENV=/tmp/x ls",
    "cat $(echo data.txt)",
    "/usr/bin/../../workspace/ls",
    "echo ${x:=value}",
    "export PAGER=sh; git log",
    "env LD_PRELOAD=x ls",
    "PYTHONPATH=/tmp python3 -V",
]


@pytest.mark.parametrize("command", WAS_GREEN)
def test_an_argument_that_writes_or_runs_is_never_green(command: str) -> None:
    a = classify_shell(command)
    assert a.risk > Risk.GREEN, (command, a)


def test_every_rule_of_the_table_catches_its_own_examples() -> None:
    argrules.check_examples(_rules_of)
    assert len(argrules.RULES) >= 19 and all(r.examples and r.reason for r in argrules.RULES)


def test_plain_reads_of_these_commands_stay_green() -> None:
    for command in (
        "awk '{print $1}' f",
        "sed -n 1,5p f",
        "sort f",
        "tar -tf a.tar",
        "git log -3",
        "git diff",
        "uniq f",
        "iconv -f utf8 -t ascii f",
        "date",
        "hostname",
        "man ls",
    ):
        assert classify_shell(command).risk == Risk.GREEN, command


RISKY_SHELL = [args["command"] for tool, args, _ in RISKY if tool == "shell"]
WRAPS = [
    "{c}; ls",
    "ls; {c}",
    "({c})",
    "true && {c}",
    "false || {c}",
    "{{ {c}; }}",
    "timeout 5 bash -c {q}",
    "env bash -c {q}",
    "if true; then {c}; fi",
    "for i in 1; do {c}; done",
    "echo $({c})",
    "ls | {c}",
]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(RISKY_SHELL), st.sampled_from(WRAPS))
def test_wrapping_or_chaining_never_lowers_a_level(command: str, wrap: str) -> None:
    alone = classify_shell(command).risk
    script = wrap.format(c=command, q=shlex.quote(command))
    wrapped = classify_shell(script).risk
    assert wrapped >= alone, (script, alone, wrapped)
