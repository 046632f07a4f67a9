"""The swarm end to end: real git worktrees, real sandboxes, real processes."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from luminaguard.swarm.queue import Queue
from tests.conftest import LUMINAGUARD, write_playbook


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, encoding="utf-8", check=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    r = tmp_path / "repo"
    r.mkdir()
    git(r, "init", "-q", "-b", "main")
    (r / "README.md").write_text("# repo\n")
    git(r, "add", ".")
    git(r, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    return r


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    p = tmp_path / "policy.toml"
    p.write_text('auto_approve = ["green", "yellow", "orange"]\n')
    return p


def playbook(tmp_path: Path, delay_ms: int = 100) -> Path:
    return write_playbook(
        tmp_path / f"pb-{delay_ms}.json",
        [
            {
                "tool_calls": [{"name": "read_file", "arguments": {"path": "README.md"}}],
                "delay_ms": delay_ms,
            },
            {
                "tool_calls": [
                    {"name": "shell", "arguments": {"command": "echo done >> result.txt"}}
                ],
                "delay_ms": delay_ms,
            },
            {"content": "ok"},
        ],
    )


def lg(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LUMINAGUARD, *args], capture_output=True, encoding="utf-8", timeout=300, check=False, **kw
    )


def status(repo: Path) -> dict[str, Any]:
    r = lg("swarm", "status", "--repo", str(repo), "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def start(repo: Path, policy: Path, agents: int, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*LUMINAGUARD, "swarm", "run", "--repo", str(repo), "--agents", str(agents), "--policy", str(policy), "--approver", "none", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, encoding="utf-8", start_new_session=True,
    )  # fmt: skip


def assert_all_done_once(repo: Path, n: int) -> None:
    s = status(repo)
    assert s["items"] == {"queued": 0, "running": 0, "done": n, "failed": 0}, s
    for item in s["items_detail"]:
        assert item["completions"] == 1, item
        # Each branch holds exactly one commit on top of main: one effective run.
        assert git(repo, "log", "--format=%s", f"main..{item['branch']}").count("\n") == 0
        assert git(repo, "show", f"{item['branch']}:result.txt") == "done"


def test_agents_work_the_queue_each_item_on_its_own_branch(
    repo: Path, policy: Path, tmp_path: Path
) -> None:
    r = lg(
        "swarm",
        "add",
        "--repo",
        str(repo),
        "--playbook",
        str(playbook(tmp_path)),
        "--count",
        "4",
        "note it",
    )
    assert len(r.stdout.split()) == 4
    s = status(repo)
    assert s["items"]["queued"] == 4 and set(s["items_detail"][0]) >= {
        "id",
        "state",
        "attempts",
        "completions",
        "branch",
    }
    run = lg(
        "swarm",
        "run",
        "--repo",
        str(repo),
        "--agents",
        "2",
        "--until-empty",
        "--policy",
        str(policy),
        "--approver",
        "none",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert_all_done_once(repo, 4)
    assert not any((repo / ".luminaguard" / "worktrees").iterdir()), "worktrees were left behind"
    assert git(repo, "status", "--porcelain") == ""


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_a_hung_worker_is_noticed_and_its_item_reclaimed(
    repo: Path, policy: Path, tmp_path: Path
) -> None:
    lg(
        "swarm",
        "add",
        "--repo",
        str(repo),
        "--playbook",
        str(playbook(tmp_path, 3000)),
        "--count",
        "1",
        "slow",
    )
    coord = start(repo, policy, 1, "--until-empty")
    try:
        agent = wait_for(
            lambda: next((a for a in status(repo)["agents"] if a["item"]), None),
            30,
            "a running item",
        )
        os.kill(agent["pid"], signal.SIGSTOP)
        stopped_at = time.monotonic()
        replaced = wait_for(
            lambda: (
                next(
                    (
                        a
                        for a in status(repo)["agents"]
                        if a["pid"] != agent["pid"] and a["state"] != "idle"
                    ),
                    None,
                )
                or (status(repo)["items"]["queued"] == 1 and True)
            ),
            15,
            "the item to become claimable",
        )
        assert replaced
        assert time.monotonic() - stopped_at < 15
        out, _ = coord.communicate(timeout=120)
    finally:
        os.killpg(coord.pid, signal.SIGKILL) if coord.poll() is None else None
    assert "missed its heartbeat" in out
    assert_all_done_once(repo, 1)


@pytest.mark.slow
def test_chaos_killed_workers_and_a_killed_coordinator_lose_nothing(
    repo: Path, policy: Path, tmp_path: Path
) -> None:
    n = 12
    lg(
        "swarm",
        "add",
        "--repo",
        str(repo),
        "--playbook",
        str(playbook(tmp_path, 300)),
        "--count",
        str(n),
        "--max-attempts",
        "10",
        "chaos",
    )
    rng = random.Random(7)
    coord = start(repo, policy, 3)
    try:
        for _ in range(4):
            time.sleep(rng.uniform(0.5, 1.5))
            victims = [a for a in status(repo)["agents"] if a["state"] in ("running", "idle")]
            if victims:
                os.kill(rng.choice(victims)["pid"], signal.SIGKILL)
        # Now the coordinator itself dies, mid-run, taking its workers with it.
        time.sleep(rng.uniform(0.3, 1.0))
        os.killpg(coord.pid, signal.SIGKILL)
        coord.wait(timeout=30)
    finally:
        if coord.poll() is None:
            os.killpg(coord.pid, signal.SIGKILL)
    again = lg(
        "swarm",
        "run",
        "--repo",
        str(repo),
        "--agents",
        "3",
        "--until-empty",
        "--policy",
        str(policy),
        "--approver",
        "none",
    )
    assert again.returncode == 0, (
        again.stdout + again.stderr + json.dumps(status(repo)["items_detail"], indent=1)
    )
    assert_all_done_once(repo, n)
    q = Queue(repo / ".luminaguard" / "swarm.db")
    assert sum(1 for i in q.details() if i["attempts"] > 1) >= 1, (
        "the chaos never interrupted an item"
    )
    assert workers_left(repo) == [], "a worker outlived the coordinator that started it"


def workers_left(repo: Path, within_s: float = 10.0) -> list[int]:
    """Pids of swarm workers for ``repo`` still alive after ``within_s``."""
    deadline = time.monotonic() + within_s
    while True:
        alive = []
        for proc in Path("/proc").iterdir():
            try:
                cmdline = (proc / "cmdline").read_bytes()
                state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            ours = b"luminaguard.swarm.worker" in cmdline and str(repo).encode() in cmdline
            if ours and state != "Z":
                alive.append(int(proc.name))
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


@pytest.mark.slow
def test_ctrl_c_stops_gracefully_and_releases_running_items(
    repo: Path, policy: Path, tmp_path: Path
) -> None:
    lg(
        "swarm",
        "add",
        "--repo",
        str(repo),
        "--playbook",
        str(playbook(tmp_path, 5000)),
        "--count",
        "2",
        "long",
    )
    # What is tested is the stop: a worker slow to beat on a loaded machine is not taken for hung.
    coord = start(repo, policy, 2, "--hung-after", "60")
    try:
        wait_for(lambda: status(repo)["items"]["running"] == 2, 30, "two running items")
        os.kill(coord.pid, signal.SIGINT)
        coord.wait(timeout=60)
    finally:
        if coord.poll() is None:
            os.killpg(coord.pid, signal.SIGKILL)
    s = status(repo)
    assert s["items"]["queued"] == 2 and s["items"]["running"] == 0, s
    # A stop gives the attempt back; the reasons say what else ended one.
    assert all(i["attempts"] == 0 for i in s["items_detail"]), s["items_detail"]


def test_git_inside_an_agents_sandbox_sees_its_worktrees_history(
    repo: Path, policy: Path, tmp_path: Path
) -> None:
    pb = write_playbook(
        tmp_path / "git.json",
        [
            {
                "tool_calls": [
                    {
                        "name": "shell",
                        "arguments": {
                            "command": "git log --format=%s -1 > seen.txt && git status --short --branch >> seen.txt && git config --get remote.origin.url >> seen.txt; true"
                        },
                    }
                ]
            },
            {"content": "ok"},
        ],
    )
    git(repo, "remote", "add", "origin", "https://me:s3cret@git.example.com/r.git")
    lg("swarm", "add", "--repo", str(repo), "--playbook", str(pb), "look at history")
    run = lg(
        "swarm", "run", "--repo", str(repo), "--agents", "1", "--until-empty",
        "--policy", str(policy), "--approver", "none",
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    item = status(repo)["items_detail"][0]
    assert item["state"] == "done", item
    seen = git(repo, "show", f"{item['branch']}:seen.txt").splitlines()
    assert seen[0] == "init"  # the repository's history, read inside the sandbox
    assert seen[1].startswith(f"## {item['branch']}")
    # The repository's own config (credentials in a remote URL) is masked.
    assert not any("git.example.com" in line for line in seen), seen


def test_agents_are_capped_by_the_machine_and_a_missing_policy_is_one_error(
    repo: Path, tmp_path: Path
) -> None:
    from luminaguard.cli.swarm import agent_capacity

    most, why = agent_capacity()
    assert 1 <= most <= (os.cpu_count() or 1) * 8 and "GiB free" in why
    r = lg(
        "swarm",
        "run",
        "--repo",
        str(repo),
        "--agents",
        "100000",
        "--until-empty",
        "--approver",
        "none",
    )
    assert r.returncode == 0, r.stderr
    assert f"--agents 100000 capped to {most}" in r.stderr
    assert f"started {most} agent(s)" in r.stdout + r.stderr
    missing = lg(
        "swarm",
        "run",
        "--repo",
        str(repo),
        "--agents",
        "2",
        "--policy",
        str(tmp_path / "nope.toml"),
    )
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1, missing.stderr
    assert "does not exist" in missing.stderr
