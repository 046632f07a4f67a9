"""Chaos: 3 workers work 20 runs while two of them are killed with -9 inside
a step and the Temporal server is killed and started again. Every run
finishes, every command runs exactly once, no decision is lost, and every
journal verifies."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_playbook
from tests.fleet.conftest import DevServer, Workers, lg, on_fleet

RUNS = 20
ENDED = ("finished", "failed", "denied")


def runs_now(ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each run's status, asked of each (a listing lags: the server's visibility store)."""
    import asyncio

    from luminaguard.fleet.client import status

    async def each(client: Any) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(status(client, r) for r in ids)))

    return dict(zip(ids, on_fleet(each), strict=True))


def submit_here(ws: Path, playbook: Path, policy: Path, task: str) -> str:
    """What `fleet submit` starts, started from this process (no process per run)."""
    from luminaguard.audit.run import new_run_id
    from luminaguard.fleet.client import submit
    from luminaguard.fleet.data import RunInput

    run = RunInput(
        run_id=new_run_id(),
        task=task,
        workspace=str(ws),
        spec=f"scripted/{playbook}",
        policy_toml=policy.read_text(),
        policy_source=str(policy),
    )
    return on_fleet(lambda client: submit(client, run, "luminaguard"))


def mid_command(journals: list[Path], workspaces: list[Path]) -> int:
    """How many runs are inside their command's step: its turn recorded, its
    effect not yet there."""
    return sum(
        1
        for j, ws in zip(journals, workspaces, strict=True)
        if j.exists() and '"model_turn"' in j.read_text() and not (ws / "count.txt").exists()
    )


@pytest.mark.slow
def test_killed_workers_and_a_killed_server_lose_nothing_and_do_nothing_twice(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = DevServer(tmp_path / "temporal.db")
    monkeypatch.setenv("LUMINAGUARD_FLEET__ADDRESS", json.dumps(server.address))
    workers = Workers()
    try:
        playbook = write_playbook(
            tmp_path / "pb.json",
            [
                {
                    "tool_calls": [
                        {"name": "shell", "arguments": {"command": "sleep 2; echo once >> count.txt"}}
                    ]
                },
                {"tool_calls": [{"name": "write_file", "arguments": {"path": "a.txt", "content": "a\n"}}]},
                {"content": "done"},
            ],
        )  # fmt: skip
        auto = tmp_path / "auto.toml"
        auto.write_text('auto_approve = ["green", "yellow", "orange"]\n')
        asks = tmp_path / "asks.toml"  # its shell and write wait for a person
        asks.write_text('auto_approve = ["green"]\n')
        pool = [workers.start() for _ in range(3)]
        ids, workspaces = [], []
        for i in range(RUNS):
            ws = tmp_path / f"ws{i}"
            ws.mkdir()
            workspaces.append(ws)
            policy = asks if i % 4 == 0 else auto
            if i == 0:  # through the command line once, the rest as it submits them
                out = lg(
                    "fleet", "submit", "--workspace", str(ws), "--playbook", str(playbook),
                    "--policy", str(policy), f"run {i}",
                )  # fmt: skip
                ids.append(out.stdout.strip().splitlines()[-1])
            else:
                ids.append(submit_here(ws, playbook, policy, f"run {i}"))
        journals = [data_dir / "runs" / f"{r}.jsonl" for r in ids]

        approved: set[tuple[str, str]] = set()
        kills = 0
        server_killed = False
        deadline = time.monotonic() + 240
        while True:
            assert time.monotonic() < deadline, runs_now(ids)
            if kills < 2 and mid_command(journals, workspaces) >= 4:
                # Inside a command's step on most slots: this worker has one.
                victim = pool.pop(0)
                os.kill(victim.pid, signal.SIGKILL)
                victim.wait()
                pool.append(workers.start())
                kills += 1
                continue
            if kills == 2 and not server_killed:
                server.kill()
                time.sleep(1)
                server.start()
                server_killed = True
            now = runs_now(ids)
            if all(now[r]["status"] in ENDED for r in ids):
                break
            for r in ids:
                waiting = now[r].get("waiting")
                if now[r]["status"] == "waiting" and waiting:
                    key = (r, waiting["call_id"])
                    if key not in approved:
                        lg(
                            "fleet",
                            "approve",
                            r,
                            waiting["call_id"],
                            "--card",
                            waiting["card_hash"],
                        )
                        approved.add(key)
            time.sleep(0.3)

        assert kills == 2 and server_killed
        assert [now[r]["status"] for r in ids] == ["finished"] * RUNS, now
        for ws in workspaces:
            assert (ws / "count.txt").read_text() == "once\n", ws
            assert (ws / "a.txt").read_text() == "a\n", ws
        resumed_mid_call = 0
        for i, r in enumerate(ids):
            lg("audit", "verify", r)
            records = [json.loads(line) for line in journals[i].read_text().splitlines()]
            if i % 4:  # its steps end with their calls done: a pending one was cut off
                resumed_mid_call += sum(
                    1 for x in records if x["type"] == "run_resumed" and x["data"]["pending_calls"]
                )
            decisions = [x["data"] for x in records if x["type"] == "decision"]
            assert len(decisions) == 2, decisions
            if i % 4 == 0:  # both of its calls, decided by a person through the Update
                assert all(d["by"].endswith("(fleet)") for d in decisions), decisions
                assert {c for (run, c) in approved if run == r} == {d["call_id"] for d in decisions}
        # The kills landed inside steps: a later attempt carried out their calls.
        assert resumed_mid_call >= 1
    finally:
        workers.stop()
        server.kill()
