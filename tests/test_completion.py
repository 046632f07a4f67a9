"""Shell completion, generated from the parser: run in a real bash, it offers
the commands, actions, options and choices the parser accepts, and files for
an option's value."""

from __future__ import annotations

import subprocess

import pytest

from tests.test_cli import lg


def complete(script: str, line: str) -> list[str]:
    """What bash's completion function offers for ``line`` (the cursor at its end)."""
    words = line.split(" ")
    program = f"""
{script}
COMP_WORDS=({" ".join(repr(w) if w else "''" for w in words)})
COMP_CWORD={len(words) - 1}
_luminaguard
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    out = subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=True)
    return [w for w in out.stdout.splitlines() if w]


@pytest.fixture(scope="module")
def script() -> str:
    r = lg("completion", "bash")
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_bash_completes_commands_actions_options_and_choices(script: str) -> None:
    assert {"run", "audit", "grants", "init", "completion"} <= set(complete(script, "luminaguard "))
    assert complete(script, "luminaguard au") == ["audit"]
    assert set(complete(script, "luminaguard audit ")) >= {"list", "show", "verify", "export"}
    assert "--limit" in complete(script, "luminaguard audit list --")
    assert complete(script, "luminaguard run --approver ") == ["prompt", "inbox", "none"]
    assert complete(script, "luminaguard run --json --appr") == ["--approver"]
    # An option's value falls back to files (no candidates of ours).
    assert complete(script, "luminaguard run --workspace ") == []
    assert complete(script, "luminaguard completion ")[:3] == ["bash", "zsh", "fish"]


def test_zsh_and_fish_scripts_name_every_command(script: str) -> None:
    commands = set(complete(script, "luminaguard ")) - {"-h", "--help", "--version"}
    zsh = lg("completion", "zsh").stdout
    assert zsh.startswith("# luminaguard completion (zsh)") and "bashcompinit" in zsh
    fish = lg("completion", "fish").stdout
    for name in commands:
        assert f"-n '__fish_use_subcommand' -a {name}" in fish, name
    assert "__fish_seen_subcommand_from audit' -a list" in fish
