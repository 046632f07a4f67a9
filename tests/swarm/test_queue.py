from __future__ import annotations

import multiprocessing
import sqlite3
import time
from pathlib import Path

import pytest

from luminaguard.errors import LeaseLost
from luminaguard.swarm.queue import Queue


@pytest.fixture
def queue(tmp_path: Path) -> Queue:
    return Queue(tmp_path / "swarm.db", max_attempts=2)


def test_claims_follow_priority_then_order(queue: Queue) -> None:
    low = queue.add("low")[0]
    high = queue.add("high", priority=5)[0]
    later = queue.add("later")[0]
    got = [queue.claim("w", 30), queue.claim("w", 30), queue.claim("w", 30), queue.claim("w", 30)]
    assert [i.id if i else None for i in got] == [high, low, later, None]
    assert got[0] is not None and got[0].attempts == 1 and got[0].branch == f"lg/{high}"


def test_completing_needs_the_current_lease(queue: Queue) -> None:
    queue.add("t")
    item = queue.claim("w1", 30)
    assert item is not None
    with pytest.raises(LeaseLost):
        queue.complete(item.id, "not-the-token")
    queue.complete(item.id, item.token)
    with pytest.raises(LeaseLost):
        queue.complete(item.id, item.token)
    [detail] = queue.details()
    assert (detail["state"], detail["completions"]) == ("done", 1)


def test_an_expired_lease_is_reaped_and_its_worker_cannot_complete(queue: Queue) -> None:
    queue.add("t")
    first = queue.claim("w1", 0.01)
    assert first is not None
    assert queue.reap(now=time.time() + 1) == [first.id]
    with pytest.raises(LeaseLost):
        queue.heartbeat(first.id, first.token, 30)
    second = queue.claim("w2", 30)
    assert second is not None and second.id == first.id and second.attempts == 2
    with pytest.raises(LeaseLost):
        queue.complete(first.id, first.token)
    queue.complete(second.id, second.token)
    assert queue.details()[0]["completions"] == 1


def test_heartbeats_extend_the_lease(queue: Queue) -> None:
    queue.add("t")
    item = queue.claim("w", 0.5)
    assert item is not None
    queue.heartbeat(item.id, item.token, 60)
    assert queue.reap(now=time.time() + 5) == []


def test_after_max_attempts_an_item_fails_with_each_reason(queue: Queue) -> None:
    queue.add("t")
    a = queue.claim("w", 30)
    assert a is not None
    assert queue.fail(a.id, a.token, "tests failed") == "queued"
    b = queue.claim("w", 30)
    assert b is not None
    assert queue.fail(b.id, b.token, "limits_exceeded") == "failed"
    [detail] = queue.details()
    assert detail["state"] == "failed"
    assert detail["reasons"] == ["attempt 1: tests failed", "attempt 2: limits_exceeded"]
    assert queue.claim("w", 30) is None


def test_a_graceful_release_does_not_use_up_an_attempt(queue: Queue) -> None:
    queue.add("t")
    a = queue.claim("w", 30)
    assert a is not None
    queue.fail(a.id, a.token, "stopping", count_attempt=False)
    [detail] = queue.details()
    assert (detail["state"], detail["attempts"], detail["reasons"]) == ("queued", 0, [])


def test_reaping_one_owner_returns_only_its_items(queue: Queue) -> None:
    queue.add("t", count=2)
    mine = queue.claim("dead/1", 300)
    theirs = queue.claim("alive/2", 300)
    assert mine is not None and theirs is not None
    assert queue.reap(owner="dead/1") == [mine.id]
    assert queue.counts() == {"queued": 1, "running": 1, "done": 0, "failed": 0}


def _drain(path: str, owner: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    q = Queue(Path(path))
    claimed = []
    while (item := q.claim(owner, 60)) is not None:
        q.complete(item.id, item.token)
        claimed.append(item.id)
    out.put(claimed)


def test_ten_processes_claim_a_thousand_items_each_exactly_once(tmp_path: Path) -> None:
    path = tmp_path / "swarm.db"
    Queue(path).add("t", count=1000)
    ctx = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [ctx.Process(target=_drain, args=(str(path), f"w{i}", results)) for i in range(10)]
    for p in procs:
        p.start()
    claimed = [x for _ in procs for x in results.get(timeout=120)]
    for p in procs:
        p.join(timeout=60)
    assert len(claimed) == 1000 and len(set(claimed)) == 1000
    db = sqlite3.connect(path)
    assert (
        db.execute(
            "SELECT COUNT(*) FROM items WHERE state = 'done' AND completions = 1"
        ).fetchone()[0]
        == 1000
    )


def test_swarm_remove_retry_and_clear_from_the_cli(tmp_path: Path) -> None:
    import subprocess

    from luminaguard.swarm.queue import Queue
    from tests.conftest import LUMINAGUARD

    repo = tmp_path / "repo"
    repo.mkdir()
    for args in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "i"]):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True
        )

    def lg(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*LUMINAGUARD, "swarm", *args, "--repo", str(repo)], capture_output=True, text=True
        )

    assert lg("status").returncode == 0  # makes the queue
    q = Queue(repo / ".luminaguard" / "swarm.db", max_attempts=1)
    # Claimed highest priority first: failing, then running, then done; queued stays.
    [queued] = q.add("t", priority=0)
    [failing] = q.add("t", priority=3)
    [running] = q.add("t", priority=2)
    [done] = q.add("t", priority=1)
    first = q.claim("test", 60)
    assert first is not None and first.id == failing
    assert q.fail(failing, first.token, "broke") == "failed"
    second = q.claim("test", 60)
    assert second is not None and second.id == running
    third = q.claim("test", 60)
    assert third is not None and third.id == done
    q.complete(done, third.token)
    states = q.states([queued, failing, running, done])
    assert states == {queued: "queued", failing: "failed", running: "running", done: "done"}

    r = lg("remove", running)
    assert r.returncode == 2 and "running" in r.stderr and "nothing changed" in r.stderr
    r = lg("retry", queued)
    assert r.returncode == 2 and "not failed" in r.stderr
    r = lg("remove", "deadbeef")
    assert r.returncode == 2 and "no item deadbeef" in r.stderr
    assert lg("retry", failing).stdout.strip() == "requeued 1 item(s)"
    assert q.states([failing]) == {failing: "queued"}
    assert lg("clear").stdout.strip() == "cleared 1 item(s)"  # the done one
    assert lg("remove", queued, failing).stdout.strip() == "removed 2 item(s)"
    assert q.states([queued, failing, running, done]) == {running: "running"}
    q.close()
