"""Swarm throughput at 1, 3 and 5 agents, queue claim+complete rate, and the
coordinator's own CPU and memory.

    python bench/swarm_bench.py [--items N] [--delay-ms D] [--json]

Items run a playbook whose steps simulate model latency (`delay_ms`), so the
agents spend their time waiting as they would on a real model. Throughput is
items per second from the first claim to an empty queue; the speed-up is
against 1 agent in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from luminaguard.swarm.queue import Queue


def make_repo(root: Path) -> Path:
    repo = root / "repo"
    repo.mkdir(parents=True)
    run = lambda *a: subprocess.run(["git", "-C", str(repo), *a], check=True, capture_output=True)  # noqa: E731
    run("init", "-q", "-b", "main")
    (repo / "README.md").write_text("# bench\n")
    run("add", ".")
    run("-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "init")
    return repo


def throughput(agents: int, items: int, delay_ms: int, root: Path) -> dict[str, Any]:
    base = root / f"a{agents}"
    base.mkdir()
    repo = make_repo(base)
    pb = base / "pb.json"
    pb.write_text(json.dumps({"steps": [
        {"tool_calls": [{"name": "read_file", "arguments": {"path": "README.md"}}], "delay_ms": delay_ms},
        {"tool_calls": [{"name": "write_file", "arguments": {"path": "out.txt", "content": "x\n"}}], "delay_ms": delay_ms},
        {"content": "done", "delay_ms": delay_ms},
    ]}))  # fmt: skip
    policy = base / "policy.toml"
    policy.write_text('auto_approve = ["green", "yellow", "orange"]\n')
    env = {**os.environ, "XDG_STATE_HOME": str(base / "state")}
    lg = [sys.executable, "-m", "luminaguard"]
    subprocess.run(
        [
            *lg,
            "swarm",
            "add",
            "--repo",
            str(repo),
            "--playbook",
            str(pb),
            "--count",
            str(items),
            "bench",
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    coord = subprocess.Popen(
        [
            *lg,
            "swarm",
            "run",
            "--repo",
            str(repo),
            "--agents",
            str(agents),
            "--until-empty",
            "--policy",
            str(policy),
            "--approver",
            "none",
        ],
        stdout=subprocess.DEVNULL,
        env=env,
    )
    peak_rss_kb = 0
    while coord.poll() is None:
        try:
            for line in Path(f"/proc/{coord.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    peak_rss_kb = max(peak_rss_kb, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.05)
    wall = time.perf_counter() - started
    queue = Queue(repo / ".luminaguard" / "swarm.db")
    counts = queue.counts()
    assert counts["done"] == items, counts
    first, last = queue.busy_window() or (0.0, wall)
    # CPU of the coordinator alone: measure it with /proc is gone now; use its own children accounting.
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "agents": agents,
        "items": items,
        "wall_s": round(wall, 2),
        "busy_s": round(last - first, 2),
        "items_per_s": round(items / (last - first), 3),
        "children_cpu_s": round(
            (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), 2
        ),
        "coordinator_peak_rss_mb": round(peak_rss_kb / 1024, 1),
    }


def coordinator_overhead(root: Path, seconds: float = 5.0) -> dict[str, Any]:
    """The coordinator's own CPU share while its 3 agents idle on an empty queue."""
    repo = make_repo(root / "idle")
    env = {**os.environ, "XDG_STATE_HOME": str(root / "idle" / "state")}
    coord = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "luminaguard",
            "swarm",
            "run",
            "--repo",
            str(repo),
            "--agents",
            "3",
            "--approver",
            "none",
        ],
        stdout=subprocess.DEVNULL,
        env=env,
    )
    time.sleep(2.0)  # let start-up finish; this is a measurement window, not synchronisation

    def cpu() -> float:
        fields = Path(f"/proc/{coord.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    c0, t0 = cpu(), time.monotonic()
    time.sleep(seconds)
    c1, t1 = cpu(), time.monotonic()
    rss = next(
        int(line.split()[1])
        for line in Path(f"/proc/{coord.pid}/status").read_text().splitlines()
        if line.startswith("VmRSS:")
    )
    coord.send_signal(2)
    coord.wait(30)
    return {"cpu_share_of_a_core": round((c1 - c0) / (t1 - t0), 4), "rss_mb": round(rss / 1024, 1)}


def queue_rate(n: int, root: Path) -> dict[str, Any]:
    q = Queue(root / "rate.db")
    q.add("t", count=n)
    started = time.perf_counter()
    while (item := q.claim("w", 60)) is not None:
        q.complete(item.id, item.token)
    wall = time.perf_counter() - started
    return {"items": n, "claim_complete_per_s": round(n / wall)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=15)
    parser.add_argument("--delay-ms", type=int, default=700)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lg-swarm-bench-") as tmp:
        root = Path(tmp)
        runs = [throughput(a, args.items, args.delay_ms, root) for a in (1, 3, 5)]
        one = runs[0]["items_per_s"]
        for r in runs:
            r["speedup"] = round(r["items_per_s"] / one, 2)
        result = {
            "throughput": runs,
            "queue": queue_rate(10000, root),
            "coordinator_idle": coordinator_overhead(root),
        }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for r in result["throughput"]:
        print(
            f"{r['agents']} agent(s): {r['items']} items, first claim to last completion {r['busy_s']} s (wall with start-up {r['wall_s']} s) = {r['items_per_s']} items/s, {r['speedup']}x; coordinator peak RSS {r['coordinator_peak_rss_mb']} MB"
        )
    print(f"queue: {result['queue']['claim_complete_per_s']} claim+complete per second")
    c = result["coordinator_idle"]
    print(
        f"coordinator with 3 agents: {c['cpu_share_of_a_core'] * 100:.2f}% of a core, {c['rss_mb']} MB RSS"
    )


if __name__ == "__main__":
    main()
