"""The fleet at scale: concurrent runs on Temporal workers beside the same
work through the one-machine swarm, taking turns; failover after kill -9.

    python bench/fleet_bench.py [--runs N] [--workers W] [--delay-ms D] [--rounds R] [--json]

Every run (fleet) and item (swarm) is the same scripted playbook: read a file,
write one (a preview, approved by the policy), answer; each model turn waits
``delay_ms`` as a model would. The fleet's W workers take one step at a time
each, the swarm gets W agents: the same concurrency. Runs/s is from the first
submission to the last result (workers already up; the swarm's from its first
claim to its last completion). Activities/s counts the completed activities in
the runs' histories. Failover is from kill -9 of the worker inside a step to
the step's next attempt starting on another worker (and to the run resumed
there: the journal's `run_resumed`), with the workflow's 2 s heartbeat timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from swarm_bench import throughput as swarm_throughput  # same directory

LG = [sys.executable, "-m", "luminaguard"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


class Fleet:
    """A dev server and its workers, in a state directory of their own."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True)
        self.port = free_port()
        self.env = {
            **os.environ,
            "XDG_STATE_HOME": str(root / "state"),
            "XDG_CONFIG_HOME": str(root / "config"),
            "LUMINAGUARD_FLEET__ADDRESS": json.dumps(f"127.0.0.1:{self.port}"),
        }
        os.environ.update(self.env)  # this process's client: the same key and server
        self.server = subprocess.Popen(
            [*LG, "fleet", "dev", "--port", str(self.port), "--db", str(root / "t.db")],
            stdout=subprocess.DEVNULL,
            env=self.env,
        )
        deadline = time.monotonic() + 60
        while socket.socket().connect_ex(("127.0.0.1", self.port)) != 0:
            if time.monotonic() > deadline or self.server.poll() is not None:
                raise SystemExit("the Temporal dev server did not start")
            time.sleep(0.1)
        self.workers: list[subprocess.Popen[str]] = []

    def worker(self, queue: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [*LG, "fleet", "worker", "--slots", "1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**self.env, "LUMINAGUARD_FLEET__TASK_QUEUE": json.dumps(queue)},
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "fleet worker" not in line:
            raise SystemExit(f"a worker did not start: {line}{proc.stdout.read()}")
        self.workers.append(proc)
        return proc

    def stop_workers(self) -> None:
        for w in self.workers:
            w.kill()
            w.wait()
        self.workers = []

    def close(self) -> None:
        self.stop_workers()
        self.server.kill()
        self.server.wait()


def playbook(path: Path, delay_ms: int) -> Path:
    path.write_text(json.dumps({"steps": [
        {"tool_calls": [{"name": "read_file", "arguments": {"path": "README.md"}}], "delay_ms": delay_ms},
        {"tool_calls": [{"name": "write_file", "arguments": {"path": "out.txt", "content": "x\n"}}], "delay_ms": delay_ms},
        {"content": "done", "delay_ms": delay_ms},
    ]}))  # fmt: skip
    return path


async def fleet_throughput(
    fleet: Fleet, round_: int, runs: int, workers: int, delay_ms: int
) -> dict[str, Any]:
    from luminaguard.audit.run import new_run_id
    from luminaguard.config import FleetSettings
    from luminaguard.fleet.client import connect, submit
    from luminaguard.fleet.data import RunInput

    base = fleet.root / f"f{round_}"
    base.mkdir()
    pb = playbook(base / "pb.json", delay_ms)
    queue = f"bench-{round_}"
    for _ in range(workers):
        fleet.worker(queue)
    client = await connect(FleetSettings(address=f"127.0.0.1:{fleet.port}"))
    inputs = []
    for i in range(runs):
        ws = base / f"ws{i}"
        ws.mkdir()
        (ws / "README.md").write_text("# bench\n")
        inputs.append(
            RunInput(
                run_id=new_run_id(),
                task="bench",
                workspace=str(ws),
                spec=f"scripted/{pb}",
                policy_toml='auto_approve = ["green", "yellow", "orange"]\n',
            )
        )
    started = time.perf_counter()
    ids = await asyncio.gather(*(submit(client, r, queue) for r in inputs))
    results = await asyncio.gather(*(client.get_workflow_handle(i).result() for i in ids))
    wall = time.perf_counter() - started
    bad = [r for r in results if r.get("status") != "finished"]
    if bad:
        raise SystemExit(f"{len(bad)} runs did not finish: {bad[0]}")
    if any((Path(r.workspace) / "out.txt").read_text() != "x\n" for r in inputs):
        raise SystemExit("a run's write is missing")
    activities = 0
    for i in ids:
        history = await client.get_workflow_handle(i).fetch_history()
        activities += sum(
            1 for e in history.events if e.HasField("activity_task_completed_event_attributes")
        )
    worker_rss = sum(rss_mb(w.pid) for w in fleet.workers)
    fleet.stop_workers()
    return {
        "runs": runs,
        "wall_s": round(wall, 2),
        "runs_per_s": round(runs / wall, 3),
        "activities": activities,
        "activities_per_s": round(activities / wall, 2),
        "workers_rss_mb": round(worker_rss, 1),
        "server_rss_mb": rss_mb(fleet.server.pid),
    }


async def failover(fleet: Fleet, attempt: int) -> tuple[float, float]:
    """Seconds from kill -9 of the worker inside a step to the step's next
    attempt starting on the other worker, and to its run resumed there (the
    journal's `run_resumed`: the session made again)."""
    from luminaguard.audit.run import new_run_id
    from luminaguard.config import FleetSettings
    from luminaguard.fleet.client import connect, submit
    from luminaguard.fleet.data import RunInput

    base = fleet.root / f"k{attempt}"
    ws = base / "ws"
    ws.mkdir(parents=True)
    pb = base / "pb.json"
    pb.write_text(json.dumps({"steps": [
        {"tool_calls": [{"name": "shell", "arguments": {"command": "sleep 3; echo once >> n.txt"}}]},
        {"content": "done"},
    ]}))  # fmt: skip
    queue = f"failover-{attempt}"
    first = fleet.worker(queue)
    client = await connect(FleetSettings(address=f"127.0.0.1:{fleet.port}"))
    run = RunInput(
        run_id=new_run_id(),
        task="bench",
        workspace=str(ws),
        spec=f"scripted/{pb}",
        policy_toml='auto_approve = ["green", "yellow", "orange"]\n',
    )
    await submit(client, run, queue)
    journal = fleet.root / "state" / "luminaguard" / "runs" / f"{run.run_id}.jsonl"
    while not (journal.exists() and '"model_turn"' in journal.read_text()):
        await asyncio.sleep(0.02)
    fleet.worker(queue)
    await asyncio.sleep(0.5)  # inside the sandboxed command
    os.kill(first.pid, signal.SIGKILL)
    killed, reassigned = time.perf_counter(), 0.0
    handle = client.get_workflow_handle(run.run_id)
    while not reassigned:
        pending = (await handle.describe()).raw_description.pending_activities
        if pending and pending[0].attempt > 1 and pending[0].HasField("last_started_time"):
            reassigned = time.perf_counter() - killed
        await asyncio.sleep(0.02)
    while '"run_resumed"' not in journal.read_text():
        await asyncio.sleep(0.02)
    resumed = time.perf_counter() - killed
    result = await client.get_workflow_handle(run.run_id).result()
    fleet.stop_workers()
    if result.get("status") != "finished" or (ws / "n.txt").read_text() != "once\n":
        raise SystemExit(f"the killed run did not finish exactly once: {result}")
    return reassigned, resumed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--delay-ms", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lg-fleet-bench-") as tmp:
        root = Path(tmp)
        fleet = Fleet(root / "fleet")
        try:
            rounds: list[dict[str, Any]] = []
            for r in range(args.rounds):  # taking turns: the machine's load moves
                f = asyncio.run(fleet_throughput(fleet, r, args.runs, args.workers, args.delay_ms))
                (root / f"s{r}").mkdir()
                s = swarm_throughput(args.workers, args.runs, args.delay_ms, root / f"s{r}")
                rounds.append({"fleet": f, "swarm": s})
            kills = [asyncio.run(failover(fleet, k)) for k in range(args.kills)]
        finally:
            fleet.close()
    fleet_rate = statistics.median(r["fleet"]["runs_per_s"] for r in rounds)
    swarm_rate = statistics.median(r["swarm"]["items_per_s"] for r in rounds)
    result = {
        "rounds": rounds,
        "fleet_runs_per_s": fleet_rate,
        "swarm_items_per_s": swarm_rate,
        "fleet_over_swarm": round(fleet_rate / swarm_rate, 2),
        "activities_per_s": statistics.median(r["fleet"]["activities_per_s"] for r in rounds),
        "failover_s": [round(k[0], 2) for k in kills],
        "failover_median_s": round(statistics.median(k[0] for k in kills), 2),
        "resumed_s": [round(k[1], 2) for k in kills],
        "resumed_median_s": round(statistics.median(k[1] for k in kills), 2),
        "server_rss_mb": max(r["fleet"]["server_rss_mb"] for r in rounds),
    }
    if args.json:
        print(json.dumps(result, indent=2), flush=True)
    else:
        for i, r in enumerate(rounds):
            f, s = r["fleet"], r["swarm"]
            print(
                f"round {i}: fleet {f['runs']} runs on {args.workers} workers in {f['wall_s']} s = "
                f"{f['runs_per_s']} runs/s, {f['activities_per_s']} activities/s "
                f"(server {f['server_rss_mb']} MB, workers {f['workers_rss_mb']} MB); "
                f"swarm {args.workers} agents {s['items_per_s']} items/s"
            )
        print(
            f"median: fleet {fleet_rate} runs/s, swarm {swarm_rate} items/s: fleet/swarm "
            f"{result['fleet_over_swarm']}x; {result['activities_per_s']} activities/s"
        )
        print(
            f"failover after kill -9 (2 s heartbeat timeout): {result['failover_s']} s, "
            f"median {result['failover_median_s']} s to the next attempt started on the other worker; "
            f"{result['resumed_s']} s, median {result['resumed_median_s']} s to the run resumed there"
        )
        print(f"dev server peak RSS {result['server_rss_mb']} MB", flush=True)
    os._exit(0)  # the Temporal SDK's runtime aborts at interpreter exit (sdk-python#300)


if __name__ == "__main__":
    main()
