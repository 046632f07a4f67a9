"""Host-side git never trusts the worktree: a swarm commit runs with hooks off
and config-driven programs disabled, with the git dir the host chose, and
refuses a worktree whose `.git` link an agent replaced."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from luminaguard.errors import GitError
from luminaguard.swarm import worktree


def run(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    run("init", "-q", "-b", "main", cwd=repo)
    (repo / "README.md").write_text("hi\n")
    run("add", ".", cwd=repo)
    run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init", cwd=repo)
    worktree.require_repo(repo)
    return repo


def test_a_commit_refuses_a_worktree_whose_git_link_points_at_the_agents_own_git_dir(
    repo: Path, tmp_path: Path
) -> None:
    path = worktree.create(repo, "item1", "lg/item1", "main")
    canary = tmp_path / "pwned"
    # What an agent can do in its workspace: a git dir of its own whose config
    # names a program, and the worktree's .git pointed at it.
    run("init", "-q", "evil", cwd=path)
    evil = path / "evil" / ".git"
    with open(evil / "config", "a") as f:
        f.write(f'[core]\n\tfsmonitor = "touch {canary}; false"\n')
    (path / ".git").write_text(f"gitdir: {evil}\n")
    (path / "change.txt").write_text("x\n")
    with pytest.raises(GitError, match="not the link LuminaGuard made"):
        worktree.commit(repo, path, "agent's work")
    assert not canary.exists(), "git ran a program the agent configured"


def test_a_commit_runs_no_hook(repo: Path, tmp_path: Path) -> None:
    canary = tmp_path / "hooked"
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text(f"#!/bin/sh\ntouch {canary}\n")
    hook.chmod(0o755)
    path = worktree.create(repo, "item2", "lg/item2", "main")
    (path / "change.txt").write_text("x\n")
    commit = worktree.commit(repo, path, "work")
    assert commit is not None
    assert not canary.exists(), "a hook ran on the host"
    shown = subprocess.run(
        ["git", "show", "--stat", "--format=%s", commit], cwd=repo, capture_output=True,
        encoding="utf-8", check=True, timeout=60,
    ).stdout  # fmt: skip
    assert "change.txt" in shown and "work" in shown


def test_a_filter_driver_selected_by_the_agents_gitattributes_does_not_run(
    repo: Path, tmp_path: Path
) -> None:
    canary = tmp_path / "filtered"
    # The user's own config defines drivers (git-lfs does; these are canaries)...
    for key in ("filter.lfs.clean", "filter.lfs.smudge", "filter.lfs.process"):
        run("config", key, f"sh -c 'touch {canary}; cat'", cwd=repo)
    run("config", "diff.x.textconv", f"sh -c 'touch {canary}; cat'", cwd=repo)
    path = worktree.create(repo, "item9", "lg/item9", "main")
    # ...and the agent chooses the files they run on.
    (path / ".gitattributes").write_text("* filter=lfs diff=x\n")
    (path / "change.txt").write_text("x\n")
    commit = worktree.commit(repo, path, "work")
    assert commit is not None
    assert not canary.exists(), "a filter driver ran on the host for the agent's files"
    shown = subprocess.run(
        ["git", "show", f"{commit}:change.txt"], cwd=repo, capture_output=True, text=True
    )
    assert shown.stdout == "x\n"
