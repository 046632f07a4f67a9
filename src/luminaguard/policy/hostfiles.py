"""Files that the person's own tools run or trust: writing them is RED.

A change inside the workspace is normally ORANGE at most, but some paths are
read by programs on the host, outside any sandbox, the next time the person
uses them: git runs hooks and config-named programs, direnv runs `.envrc`,
editors run tasks. A write there is a way out of the sandbox, so it is RED
with the danger named, whichever tool makes it. Pure; the one list.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from luminaguard.core.risk import Assessment, Risk

# name (a file, or a directory whose whole subtree counts) -> what runs it.
HOST_RUN: dict[str, str] = {
    ".git": "git runs hooks and config-named programs (core.fsmonitor, core.hooksPath, filters, diff.external) from here",
    ".gitattributes": "it names filter and diff drivers that git runs on checkout, add and diff",
    ".gitmodules": "it names submodule URLs and update commands that git runs",
    ".envrc": "direnv runs it in the person's shell on entering the directory",
    ".vscode": "the editor runs its tasks, launch configurations and program-naming settings",
    ".idea": "JetBrains IDEs run its run configurations and tools",
    ".devcontainer": "editors build and run the containers it defines",
    ".pre-commit-config.yaml": "pre-commit runs the hooks it lists on the next commit",
    ".husky": "husky installs its scripts as git hooks",
    ".npmrc": "npm reads scripts, registries and tokens from it",
    ".yarnrc": "yarn reads registries and scripts from it",
    ".yarnrc.yml": "yarn reads plugins, registries and scripts from it",
    "luminaguard.toml": "LuminaGuard starts the servers and loads the policy it names",
    ".luminaguard": "it holds LuminaGuard's own state (the swarm queue)",
}
WORKFLOWS = (".github", "workflows")
WORKFLOWS_WHY = "CI runs these workflows with the repository's secrets once pushed"


def host_file(path: str) -> str | None:
    """Why ``path`` (workspace-relative) is run or trusted by the person's tools, or None."""
    parts = [p.casefold() for p in PurePosixPath(path.removeprefix("/workspace/")).parts]
    for i, part in enumerate(parts):
        if part in HOST_RUN:
            return HOST_RUN[part]
        if tuple(parts[i : i + 2]) == WORKFLOWS:
            return WORKFLOWS_WHY
    return None


def classify_host_files(who: str, paths: list[str]) -> Assessment | None:
    """RED for the first of ``paths`` that the person's tools run; None when none is."""
    for path in paths:
        why = host_file(path)
        if why is not None:
            return Assessment.of(
                Risk.RED, "host-executed", f"{who} changes {path}, which runs on the host: {why}"
            )
    return None
