"""A git worktree per work item, on a branch `lg/<item>` from the base branch."""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from luminaguard.errors import GitError

GIT_ENV = {
    "GIT_AUTHOR_NAME": "LuminaGuard",
    "GIT_AUTHOR_EMAIL": "agent@luminaguard.invalid",
    "GIT_COMMITTER_NAME": "LuminaGuard",
    "GIT_COMMITTER_EMAIL": "agent@luminaguard.invalid",
}


def git(repo: Path, *args: str, check: bool = True) -> str:
    import os

    out = subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        encoding="utf-8",
        env={**os.environ, **GIT_ENV},
        timeout=120,
        check=False,
    )
    if check and out.returncode != 0:
        raise GitError(f"git {' '.join(args)} failed: {(out.stderr or out.stdout).strip()[:300]}")
    return out.stdout.strip()


def require_repo(repo: Path) -> None:
    if not repo.is_dir():
        raise GitError(f"{repo} is not a directory")
    if git(repo, "rev-parse", "--is-inside-work-tree", check=False) != "true":
        raise GitError(f"{repo} is not a git repository")
    if git(repo, "rev-parse", "--verify", "HEAD", check=False) == "":
        raise GitError(f"{repo} has no commit yet; the swarm branches from one")
    # The queue and the worktrees live in .luminaguard/: keep git from listing them.
    exclude = git_common_dir(repo) / "info" / "exclude"
    lines = exclude.read_text(encoding="utf-8").splitlines() if exclude.exists() else []
    if ".luminaguard/" not in lines:
        exclude.parent.mkdir(parents=True, exist_ok=True)
        exclude.write_text("\n".join([*lines, ".luminaguard/"]) + "\n", encoding="utf-8")


def git_common_dir(repo: Path) -> Path:
    """The repository's git dir (objects, refs), which every worktree's `.git` names."""
    found = Path(git(repo, "rev-parse", "--git-common-dir"))
    return (found if found.is_absolute() else repo / found).resolve()


def sandbox_binds(repo: Path) -> tuple[tuple[str, str], ...]:
    """What an agent's sandbox needs, read-only, for git to work in a worktree:
    the repository's git dir, whose own config is masked by a minimal one (it
    may hold credentials: remote URLs with tokens, helpers)."""
    common = git_common_dir(repo)
    masked = repo / ".luminaguard" / "git-config"
    if not masked.exists():
        masked.parent.mkdir(parents=True, exist_ok=True)
        masked.write_text(
            "# The repository's own config, as agents' sandboxes see it (the real one is masked).\n"
            "[core]\n\trepositoryformatversion = 0\n\tbare = false\n",
            encoding="utf-8",
        )
    return ((str(common), str(common)), (str(masked), str(common / "config")))


def base_branch(repo: Path) -> str:
    return git(repo, "rev-parse", "--abbrev-ref", "HEAD")


def worktrees_dir(repo: Path) -> Path:
    return repo / ".luminaguard" / "worktrees"


@contextlib.contextmanager
def repo_lock(repo: Path) -> Iterator[None]:
    """Serialise worktree changes between workers: concurrent `git worktree`
    commands on one repository trip over each other's administrative files."""
    lock = repo / ".luminaguard" / "git.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def create(repo: Path, item_id: str, branch: str, base: str) -> Path:
    """A fresh worktree for a new attempt: an earlier attempt's branch is discarded."""
    path = worktrees_dir(repo) / item_id
    with repo_lock(repo):
        _remove(repo, path)
        git(repo, "worktree", "add", "-q", "-B", branch, str(path), base)
    return path


def commit(path: Path, message: str) -> str | None:
    """Commit everything the run changed on the worktree's branch; the commit id, or None."""
    git(path, "add", "-A")
    if git(path, "status", "--porcelain") == "":
        return None
    git(path, "commit", "-q", "-m", message)
    return git(path, "rev-parse", "HEAD")


def remove(repo: Path, path: Path) -> None:
    with repo_lock(repo):
        _remove(repo, path)


def _remove(repo: Path, path: Path) -> None:
    if path.exists():
        git(repo, "worktree", "remove", "--force", str(path), check=False)
        shutil.rmtree(path, ignore_errors=True)


def clean_stale(repo: Path, keep: set[str]) -> list[str]:
    """Remove worktrees of items that are not running (left by a crash)."""
    removed = []
    base = worktrees_dir(repo)
    with repo_lock(repo):
        if base.is_dir():
            for path in base.iterdir():
                if path.name not in keep:
                    _remove(repo, path)
                    removed.append(path.name)
        git(repo, "worktree", "prune", check=False)
    return removed
