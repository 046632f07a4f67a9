"""A git worktree per work item, on a branch `lg/<item>` from the base branch.

The worktree is the agent's workspace, so everything in it is untrusted: its
`.git` link, `.gitattributes`, anything an agent wrote. Git on the host never
takes a hint from it: every call runs with hooks off, every config-driven
program disabled (``HARDENED``) and every configured filter, diff or merge
driver set empty (``.gitattributes`` picks the files a driver runs on: LFS
content is committed as the agent's sandbox saw it), and the commit runs with the git dir and
work tree the host chose, after checking that the worktree's `.git` link is
still the one git made (an agent could point it at a git dir of its own,
whose config names a program to run).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from luminaguard.errors import GitError, UsageError
from luminaguard.store import exclusive

GIT_ENV = {
    "GIT_AUTHOR_NAME": "LuminaGuard",
    "GIT_AUTHOR_EMAIL": "agent@luminaguard.invalid",
    "GIT_COMMITTER_NAME": "LuminaGuard",
    "GIT_COMMITTER_EMAIL": "agent@luminaguard.invalid",
}


# Every config-driven way git runs a program, off; hooks off.
HARDENED = (
    "-c", "core.hooksPath=/dev/null",
    "-c", "core.fsmonitor=false",
    "-c", "core.untrackedCache=false",
    "-c", "core.pager=cat",
    "-c", "diff.external=",
    "-c", "commit.gpgSign=false",
    "-c", "tag.gpgSign=false",
    "-c", "core.sshCommand=false",
    "-c", "credential.helper=",
    "-c", "protocol.allow=never",
)  # fmt: skip


# Programs a configured driver runs on files that `.gitattributes` (which the
# agent can write) selects: clean/smudge/process filters (git-lfs, say), diff
# commands and textconv, merge drivers. Each one configured is set empty: off.
DRIVER_KEYS = r"^(filter|diff|merge)\..+\.(clean|smudge|process|command|textconv|driver)$"


def git(repo: Path, *args: str, check: bool = True, at: tuple[str, ...] | None = None) -> str:
    """Run git on ``repo`` (or with the explicit ``at`` arguments: git dir and work tree)."""
    where = list(at) if at is not None else ["-C", str(repo)]
    return _run(["git", *HARDENED, *_drivers_off(repo), *where, *args], args, check)


def _run(argv: list[str], args: tuple[str, ...], check: bool) -> str:
    import os

    out = subprocess.run(
        argv,
        capture_output=True,
        encoding="utf-8",
        env={**os.environ, **GIT_ENV, "GIT_TERMINAL_PROMPT": "0"},
        timeout=120,
        check=False,
    )
    if check and out.returncode != 0:
        raise GitError(f"git {' '.join(args)} failed: {(out.stderr or out.stdout).strip()[:300]}")
    return out.stdout.strip()


def _drivers_off(repo: Path) -> list[str]:
    """``-c KEY=`` for every driver program the repository's config (with the
    user's and the system's) names. Read with the repository as the work tree,
    never a worktree: the agent does not choose which config is read."""
    listed = _run(
        ["git", *HARDENED, "-C", str(repo), "config", "--name-only", "--get-regexp", DRIVER_KEYS],
        ("config",),
        check=False,
    )
    return [arg for key in listed.splitlines() if key for arg in ("-c", f"{key}=")]


def require_repo(repo: Path) -> None:
    # The person named the wrong directory: a usage error (exit 2), not a git failure.
    if not repo.is_dir():
        raise UsageError(f"{repo} is not a directory")
    if git(repo, "rev-parse", "--is-inside-work-tree", check=False) != "true":
        raise UsageError(f"{repo} is not a git repository")
    if git(repo, "rev-parse", "--verify", "HEAD", check=False) == "":
        raise UsageError(f"{repo} has no commit yet; the swarm branches from one")
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
    with exclusive(repo / ".luminaguard" / "git.lock"):
        yield


def create(repo: Path, item_id: str, branch: str, base: str) -> Path:
    """A fresh worktree for a new attempt: an earlier attempt's branch is discarded."""
    path = worktrees_dir(repo) / item_id
    with repo_lock(repo):
        _remove(repo, path)
        git(repo, "worktree", "add", "-q", "-B", branch, str(path), base)
    return path


def admin_dir(repo: Path, path: Path) -> Path:
    """The git dir that git made for the worktree at ``path`` (in the
    repository's own git dir, which no agent can write)."""
    base = git_common_dir(repo) / "worktrees"
    want = str(path / ".git")
    for candidate in sorted(base.iterdir()) if base.is_dir() else []:
        with contextlib.suppress(OSError):
            if (candidate / "gitdir").read_text(encoding="utf-8").strip() == want:
                return candidate
    raise GitError(f"{path} is not a worktree of {repo}")


def commit(repo: Path, path: Path, message: str) -> str | None:
    """Commit everything the run changed on the worktree's branch; the commit id, or None.

    Refuses (nothing committed) when the worktree's `.git` is not the link git
    made: an agent may have pointed it at a git dir of its own."""
    admin = admin_dir(repo, path)
    link = path / ".git"
    try:
        intact = (
            link.is_file()
            and not link.is_symlink()
            and (link.read_text(encoding="utf-8").strip() == f"gitdir: {admin}")
        )
    except OSError:
        intact = False
    if not intact:
        raise GitError(
            f"the worktree's .git at {link} is not the link LuminaGuard made (changed by the "
            "agent?); nothing was committed"
        )
    at = (f"--git-dir={admin}", f"--work-tree={path}")
    git(repo, "add", "-A", at=at)
    if git(repo, "status", "--porcelain", at=at) == "":
        return None
    git(repo, "commit", "-q", "--no-verify", "-m", message, at=at)
    return git(repo, "rev-parse", "HEAD", at=at)


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
