"""`luminaguard init`: commented starting points that change nothing as they
are, and whose every key, uncommented, is one the loader accepts with the
value it already has."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

from luminaguard.cli.init import EXAMPLES
from luminaguard.config import Settings
from luminaguard.policy.policyfile import Policy, load_policy
from tests.test_cli import lg

KEY = re.compile(r"^# ([a-z_]+ = .*)$|^# (\[[a-z_.]+\])$")


def uncommented(text: str) -> dict[str, object]:
    """Every `# key = value` and `# [section]` line of a scaffold, as TOML."""
    keys = text.split(EXAMPLES)[0].splitlines()
    lines = [next(g for g in m.groups() if g) for m in map(KEY.match, keys) if m]
    return tomllib.loads("\n".join(lines))


def test_init_writes_a_config_and_a_policy_that_change_nothing_until_edited(
    tmp_path: Path,
) -> None:
    r = lg("init")
    assert r.returncode == 0, r.stderr
    home = Path(os.environ["XDG_CONFIG_HOME"]) / "luminaguard"
    config, policy = home / "luminaguard.toml", home / "policy.toml"
    assert tomllib.loads(policy.read_text()) == {}
    assert tomllib.loads(config.read_text()) == {"policy": "policy.toml"}
    assert load_policy(policy).model_dump(exclude={"source"}) == Policy().model_dump(
        exclude={"source"}
    )
    # Each key it shows, with its shown value, is accepted and is the default.
    shown = uncommented(config.read_text())
    assert {"agent", "sandbox", "llm", "router", "mcp"} <= set(shown)
    assert Settings.model_validate(shown).sandbox == Settings().sandbox
    assert (
        Policy.model_validate(uncommented(policy.read_text())).auto_approve == Policy().auto_approve
    )
    again = lg("init")
    assert again.returncode == 2 and "already exists; nothing was written" in again.stderr


def test_init_for_a_workspace_says_it_must_be_trusted(workspace: Path) -> None:
    r = lg("init", "--workspace", str(workspace))
    assert r.returncode == 0, r.stderr
    assert "luminaguard trust" in r.stdout
    assert tomllib.loads((workspace / "luminaguard.toml").read_text()) == {}
    assert (
        lg("run", "x", "--workspace", str(workspace), "--playbook", "/nonexistent").returncode == 2
    )


def test_each_key_is_explained_by_its_docstring() -> None:
    from luminaguard.cli.init import scaffold
    from luminaguard.config import SandboxSettings

    text = scaffold(SandboxSettings)
    assert (
        "# Wall-clock limit of one command; the whole process tree is killed after it.\n# timeout_s = "
        in text
    )
