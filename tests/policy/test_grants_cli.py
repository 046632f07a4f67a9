"""`luminaguard grants list|revoke`: the grants in force, and taking one back."""

from __future__ import annotations

import json
import time
from pathlib import Path

from luminaguard.core.card import DiffCard
from luminaguard.core.grant import Grant
from luminaguard.core.risk import Assessment, Risk
from luminaguard.policy.grants import GrantStore
from tests.test_cli import lg

CARD = DiffCard(
    tool="shell",
    arguments={"command": "make lint"},
    assessment=Assessment.of(Risk.YELLOW, "runs-build", "runs a build"),
    kind="command",
)


def test_grants_are_listed_and_a_revoked_one_answers_nothing(
    data_dir: Path, tmp_path: Path
) -> None:
    store = GrantStore(data_dir / "state.db")
    store.add(
        Grant(
            "shell",
            Risk.YELLOW,
            time.time() + 3600,
            exact="make lint",
            id="g-1",
            created_by="alice",
        )
    )
    store.add(Grant("shell", Risk.ORANGE, time.time() + 7200, pattern="pytest*", id="g-2"))
    store.add(Grant("shell", Risk.RED, time.time() - 1, exact="old", id="g-old"))
    store.close()
    policy = tmp_path / "policy.toml"
    policy.write_text('[[grants]]\ntool = "write_file"\npattern = "docs/*"\nmax_risk = "yellow"\n')
    listed = lg("grants", "list", "--policy", str(policy)).stdout.splitlines()
    assert [line.split()[0] for line in listed] == ["policy-write_file-docs/*", "g-1", "g-2"]
    assert "'make lint'" in listed[1] and "up to yellow" in listed[1] and "alice" in listed[1]
    before = GrantStore(data_dir / "state.db").match(CARD, workspace="/w", run_id="r")
    assert before is not None and before.id == "g-1"
    assert lg("grants", "revoke", "g-1").returncode == 0
    ids = [g["id"] for g in json.loads(lg("grants", "list", "--json").stdout)]
    assert ids == ["g-2"]
    assert GrantStore(data_dir / "state.db").match(CARD, workspace="/w", run_id="r") is None
    again = lg("grants", "revoke", "g-1")
    assert again.returncode == 2 and "no stored grant g-1" in again.stderr
    standing = lg("grants", "revoke", "policy-write_file-docs/*")
    assert standing.returncode == 2 and "remove it there" in standing.stderr
    assert (
        lg("grants", "revoke", "--all").stdout.strip() == "revoked 2 grant(s)"
    )  # g-2 and the expired one
    assert lg("grants", "list").stdout.strip() == "no grants in force"
