"""Approvers are who they say: a principal is the OS user of the process's
real uid, or a principal the policy binds that user to; `--as NAME` is refused
otherwise, and `$USER`/`$LOGNAME` change nothing."""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

import pytest

from luminaguard.errors import UsageError
from luminaguard.policy.permissions import Principal, acting_principal, local_user
from tests.conftest import LUMINAGUARD

ME = pwd.getpwuid(os.getuid()).pw_name


def test_the_local_user_comes_from_the_uid_not_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("USER", "LOGNAME", "LNAME", "USERNAME"):
        monkeypatch.setenv(name, "mallory")
    assert local_user() == ME


def test_as_is_refused_unless_the_policy_binds_the_os_user() -> None:
    principals = {
        "alice": Principal(role="r", users=(ME,)),
        "bob": Principal(role="r", users=("somebody-else", "99999")),
        "carol": Principal(role="r", users=(str(os.getuid()),)),
    }
    assert acting_principal("alice", principals) == "alice"
    assert acting_principal("carol", principals) == "carol"  # bound by uid
    assert acting_principal(None, {}) == ME
    assert acting_principal(ME, {}) == ME
    for name in ("bob", "nobody-at-all"):
        with pytest.raises(UsageError, match=f"does not bind {ME} to {name}"):
            acting_principal(name, principals)
    with pytest.raises(UsageError):
        acting_principal("alice", {})  # no principals at all: --as names nobody
    # With nothing asked, the one principal the user is bound to.
    assert acting_principal(None, {"alice": principals["alice"]}) == "alice"
    assert acting_principal(None, principals) == ME  # two bind me: no guess


def test_the_cli_refuses_an_unbound_as_with_one_sentence(tmp_path: Path) -> None:
    done = subprocess.run(
        [*LUMINAGUARD, "approvals", "--as", "alice", "list"],
        capture_output=True,
        encoding="utf-8",
        env={**os.environ, "USER": "alice", "LOGNAME": "alice"},
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert f"you are the OS user {ME}" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_user_bound_to_a_principal_approves_at_the_prompt(
    workspace: Path, tmp_path: Path
) -> None:
    from tests.conftest import write_playbook

    pb = write_playbook(
        tmp_path / "p.json",
        [
            {
                "tool_calls": [
                    {"name": "write_file", "arguments": {"path": "n.txt", "content": "x"}}
                ]
            },
            {"content": "done"},
        ],
    )

    def run(policy_text: str) -> subprocess.CompletedProcess[str]:
        policy = tmp_path / "policy.toml"
        policy.write_text(policy_text)
        return subprocess.run(
            [*LUMINAGUARD, "run", "t", "--workspace", str(workspace), "--playbook", str(pb),
             "--policy", str(policy), "--approver", "prompt"],
            input="y\n", capture_output=True, encoding="utf-8", timeout=120,
        )  # fmt: skip

    roles = '[roles.dev]\nmax_risk = "orange"\n'
    bound = run(roles + f'[principals.alice]\nrole = "dev"\nusers = ["{ME}"]\n')
    assert bound.returncode == 0, bound.stderr
    assert "approved by alice" in bound.stdout and (workspace / "n.txt").exists()
    (workspace / "n.txt").unlink()
    unbound = run(roles + '[principals.alice]\nrole = "dev"\nusers = ["somebody-else"]\n')
    assert f"{ME} is not a principal of the policy" in unbound.stderr
    assert not (workspace / "n.txt").exists()
