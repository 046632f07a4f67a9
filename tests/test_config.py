from __future__ import annotations

from pathlib import Path

import pytest

from luminaguard.config import load_settings
from luminaguard.errors import ConfigError
from luminaguard.paths import user_data_dir
from luminaguard.trust import trust


def test_defaults_are_safe_when_no_file_exists(workspace: Path) -> None:
    s = load_settings(workspace, env={})
    assert s.model is None
    assert s.policy is None
    assert s.sandbox.backend == "bwrap"
    assert s.agent.max_steps == 30
    assert s.source == "defaults"


def test_a_trusted_workspace_file_wins_over_the_user_file(workspace: Path, tmp_path: Path) -> None:
    user = tmp_path / "xdg" / "luminaguard"
    user.mkdir(parents=True)
    (user / "luminaguard.toml").write_text('model = "scripted/user.json"\n')
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert load_settings(workspace, env=env).model == "scripted/user.json"
    (workspace / "luminaguard.toml").write_text('model = "scripted/ws.json"\n')
    with pytest.raises(ConfigError, match="sets model"):
        load_settings(workspace, env=env)
    trust(workspace / "luminaguard.toml", user_data_dir(env))
    assert load_settings(workspace, env=env).model == "scripted/ws.json"


def test_environment_overrides_nested_and_top_level_keys(workspace: Path) -> None:
    (workspace / "luminaguard.toml").write_text("[agent]\nmax_steps = 5\n")
    env = {"LUMINAGUARD_AGENT__MAX_STEPS": "7", "LUMINAGUARD_MODEL": "scripted/x.json"}
    s = load_settings(workspace, env=env)
    assert s.agent.max_steps == 7
    assert s.model == "scripted/x.json"
    assert s.source.endswith("+ environment")


def test_a_relative_policy_path_is_relative_to_the_config_file(workspace: Path) -> None:
    (workspace / "luminaguard.toml").write_text('policy = "policies/p.toml"\n')
    trust(workspace / "luminaguard.toml", user_data_dir({}))
    assert load_settings(workspace, env={}).policy == workspace / "policies" / "p.toml"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[agent]\nmax_steps = 'many'\n", "agent.max_steps"),
        ("[agent]\nmax_step = 3\n", "unknown key agent.max_step"),
        ("[sandbox]\ntimeout_s = -1\n", "sandbox.timeout_s"),
        ("colour = 'blue'\n", "unknown key colour"),
        ("[agent\n", "is not valid TOML"),
    ],
)
def test_a_bad_file_gives_one_error_naming_the_key(
    workspace: Path, text: str, expected: str
) -> None:
    (workspace / "luminaguard.toml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(workspace, env={})
    message = str(info.value)
    assert expected in message
    assert str(workspace / "luminaguard.toml") in message
    assert "\n" not in message


def test_a_bad_environment_override_names_the_key(workspace: Path) -> None:
    with pytest.raises(ConfigError, match=r"agent\.max_steps"):
        load_settings(workspace, env={"LUMINAGUARD_AGENT__MAX_STEPS": "lots"})


def test_an_explicit_config_that_does_not_exist_is_an_error(workspace: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(workspace, env={"LUMINAGUARD_CONFIG": str(workspace / "nope.toml")})
