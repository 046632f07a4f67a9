"""The fleet end to end: a real Temporal dev server, real workers, the demo's
project in a real sandbox, decisions through the Workflow Update."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_playbook
from tests.fleet.conftest import Workers, lg, settled, status, wait_for

DEMO = Path(__file__).parents[2] / "src" / "luminaguard" / "demo"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    ws = tmp_path / "project"
    shutil.copytree(DEMO / "project", ws)
    return ws


def submit(ws: Path, playbook: Path, *extra: str) -> str:
    out = lg(
        "fleet", "submit", "--workspace", str(ws), "--playbook", str(playbook), *extra, "fix it"
    )
    return out.stdout.strip().splitlines()[-1]


def journal(run: str) -> list[dict[str, Any]]:
    shown = json.loads(lg("audit", "show", run, "--json").stdout)
    records: list[dict[str, Any]] = shown["records"] if isinstance(shown, dict) else shown
    return records


def test_a_run_waits_for_each_card_and_finishes_as_approved(
    project: Path, workers: Workers
) -> None:
    workers.start()
    run = submit(project, DEMO / "playbook.json")
    decided = []
    while True:
        now = wait_for(run, settled)
        if now["status"] != "waiting":
            break
        waiting = now["waiting"]
        assert waiting["card_hash"] and waiting["risk"] in ("yellow", "orange", "red")
        assert waiting["tool"] in waiting["summary"]
        lg("fleet", "approve", run, waiting["call_id"])
        decided.append(waiting["call_id"])
        # Decided once: the same decision again is refused by the Update's validator.
        again = lg("fleet", "approve", run, waiting["call_id"], check=False)
        assert again.returncode == 2, again
        assert any(w in again.stderr for w in ("decided already", "does not wait", "has ended"))
    assert now["status"] == "finished", now
    shown = json.loads(lg("fleet", "status", run, "--json").stdout)["runs"]
    assert [r["status"] for r in shown] == ["finished"]
    assert "len(values)\n" in (project / "calc.py").read_text()
    assert decided, "the demo's writes and commands wait for a person"
    lg("audit", "verify", run)
    records = journal(run)
    by = {r["data"]["call_id"]: r["data"]["by"] for r in records if r["type"] == "decision"}
    assert all(by[c].endswith("(fleet)") for c in decided), by


def test_a_denial_reaches_the_model_and_a_stop_policy_ends_the_run_denied(
    project: Path, workers: Workers, tmp_path: Path
) -> None:
    workers.start()
    stop = tmp_path / "stop.toml"
    stop.write_text('on_denial = "stop"\n')
    run = submit(project, DEMO / "playbook.json", "--policy", str(stop))
    waiting = wait_for(run, settled)["waiting"]
    lg("fleet", "deny", run, waiting["call_id"], "--reason", "not now")
    end = wait_for(run, lambda s: s["status"] != "running" and s["status"] != "waiting")
    assert end["status"] == "denied", end
    assert "not now" in end["message"]
    assert (project / "calc.py").read_text() == (DEMO / "project" / "calc.py").read_text()


def test_the_update_refuses_an_unknown_call_a_changed_card_and_a_principal_not_allowed(
    project: Path, workers: Workers, tmp_path: Path
) -> None:
    import getpass

    me = getpass.getuser()
    policy = tmp_path / "roles.toml"
    policy.write_text(
        f'[roles.reader]\nmax_risk = "green"\n[principals.{me}]\nrole = "reader"\n'
        f'[roles.lead]\nmax_risk = "red"\n[principals.lead]\nrole = "lead"\nusers = ["{me}"]\n'
    )
    workers.start()
    run = submit(project, DEMO / "playbook.json", "--policy", str(policy))
    waiting = wait_for(run, settled)["waiting"]
    assert waiting["allowed"] == ["lead"]
    unknown = lg("fleet", "approve", run, "call_nope", check=False)
    assert unknown.returncode == 2 and "does not wait" in unknown.stderr
    stale = lg("fleet", "approve", run, waiting["call_id"], "--card", "0" * 64, check=False)
    assert stale.returncode == 2 and "changed" in stale.stderr
    reader = lg("fleet", "approve", run, waiting["call_id"], check=False)
    assert reader.returncode == 2 and "may not approve" in reader.stderr, reader.stderr
    assert status(run)["status"] == "waiting"
    lg("fleet", "approve", run, waiting["call_id"], "--as", "lead", "--card", waiting["card_hash"])
    after = wait_for(
        run, lambda s: s["status"] != "waiting" or s["waiting"]["call_id"] != waiting["call_id"]
    )
    assert after["status"] in ("waiting", "running", "finished"), after


def test_what_the_server_stores_is_sealed(project: Path, workers: Workers, fleet_env: str) -> None:
    import asyncio

    from temporalio.client import Client

    workers.start()
    secret = "the task text nobody else reads 7f3a"
    playbook = write_playbook(project.parent / "p.json", [{"content": "done"}])
    out = lg("fleet", "submit", "--workspace", str(project), "--playbook", str(playbook), secret)
    run = out.stdout.strip().splitlines()[-1]
    wait_for(run, lambda s: s["status"] == "finished")

    async def stored_payloads() -> list[Any]:
        client = await Client.connect(fleet_env)  # no codec: what the server holds
        history = await client.get_workflow_handle(run).fetch_history()
        started = history.events[0].workflow_execution_started_event_attributes
        results = [
            e.activity_task_completed_event_attributes.result
            for e in history.events
            if e.HasField("activity_task_completed_event_attributes")
        ]
        return [*started.input.payloads, *(p for r in results for p in r.payloads)]

    payloads = asyncio.run(stored_payloads())
    assert len(payloads) >= 2
    for p in payloads:
        assert p.metadata["encoding"] == b"binary/luminaguard-aesgcm"
        assert secret.encode() not in p.data and b"scripted/" not in p.data

    # A worker with another key cannot read the run (nor forge a payload for it).
    from luminaguard.fleet.codec import Sealed

    with pytest.raises(ValueError, match="another fleet key"):
        asyncio.run(Sealed(b"k" * 32).decode(payloads[:1]))
    forged = type(payloads[0])(
        metadata=dict(payloads[0].metadata), data=payloads[0].data[:-1] + b"x"
    )
    with pytest.raises(ValueError, match="does not verify"):
        from luminaguard.fleet.codec import fleet_key

        asyncio.run(Sealed(fleet_key()).decode([forged]))


def test_bad_submissions_are_one_clear_error(project: Path, fleet_env: str, tmp_path: Path) -> None:
    missing = lg(
        "fleet",
        "submit",
        "--workspace",
        str(project),
        "--playbook",
        str(tmp_path / "no.json"),
        "x",
        check=False,
    )
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("auto_approve = [\n")
    policy = lg(
        "fleet",
        "submit",
        "--workspace",
        str(project),
        "--playbook",
        str(DEMO / "playbook.json"),
        "--policy",
        str(bad),
        "x",
        check=False,
    )
    assert policy.returncode == 2 and "not valid TOML" in policy.stderr
    nowhere = lg("fleet", "status", "--address", "127.0.0.1:1", check=False)
    assert nowhere.returncode == 2 and "cannot reach" in nowhere.stderr
    no_run = lg("fleet", "approve", "no-such-run", "call_1", check=False)
    assert no_run.returncode == 2 and "no-such-run" in no_run.stderr, no_run.stderr
    assert "Traceback" not in missing.stderr + policy.stderr + nowhere.stderr + no_run.stderr


@pytest.mark.slow
def test_a_worker_killed_mid_step_loses_nothing_and_does_nothing_twice(
    project: Path, workers: Workers, tmp_path: Path, data_dir: Path
) -> None:
    import os
    import signal
    import time

    policy = tmp_path / "auto.toml"
    policy.write_text('auto_approve = ["green", "yellow", "orange"]\n')
    playbook = write_playbook(
        tmp_path / "slow.json",
        [
            {
                "tool_calls": [
                    {"name": "shell", "arguments": {"command": "sleep 3; echo once >> count.txt"}}
                ]
            },
            {"content": "done"},
        ],
    )
    first = workers.start()
    run = submit(project, playbook, "--policy", str(policy))
    path = data_dir / "runs" / f"{run}.jsonl"
    deadline = time.monotonic() + 60
    while not (path.exists() and '"model_turn"' in path.read_text()):
        assert time.monotonic() < deadline, "the first step never started"
        time.sleep(0.1)
    workers.start()
    os.kill(first.pid, signal.SIGKILL)  # inside the step: its preview is running
    killed = time.monotonic()
    end = wait_for(run, lambda s: s["status"] in ("finished", "failed", "denied"))
    assert end["status"] == "finished", end
    assert time.monotonic() - killed < 30
    assert (project / "count.txt").read_text() == "once\n"
    lg("audit", "verify", run)
    records = journal(run)
    calls = [r["data"] for r in records if r["type"] == "tool_call"]
    # The killed worker's preview was lost with it; another worker made the card and committed it.
    assert len(calls) == 1 and f"/{first.pid}" not in calls[0]["card"]["context"]["agent"]
    assert records[-1]["type"] == "run_finished"


def test_a_run_started_without_the_fleet_key_is_never_worked(
    project: Path, workers: Workers, fleet_env: str, data_dir: Path
) -> None:
    """Whoever can reach the Temporal service but lacks the key cannot make a
    worker run anything: its payloads are refused, not read."""
    import asyncio
    import os
    import time

    from temporalio.client import Client

    from luminaguard.fleet.data import RunInput

    workers.start()
    run = RunInput(
        run_id="20990101-000000-abcdef",
        task="plant something",
        workspace=str(project),
        spec=f"scripted/{DEMO / 'playbook.json'}",
        policy_toml='auto_approve = ["green", "yellow", "orange", "red"]\n',
    )

    async def start_plain() -> str:
        client = await Client.connect(fleet_env)  # the default converter: nothing sealed
        handle = await client.start_workflow(
            "AgentRun",
            run,
            id=run.run_id,
            task_queue=os.environ["LUMINAGUARD_FLEET__TASK_QUEUE"].strip('"'),
        )
        time.sleep(6)
        described = await handle.describe()
        await handle.terminate()
        assert described.status is not None
        return described.status.name

    assert asyncio.run(start_plain()) == "RUNNING"
    assert not (data_dir / "runs" / f"{run.run_id}.jsonl").exists()
    assert (project / "calc.py").read_text() == (DEMO / "project" / "calc.py").read_text()


def test_an_approval_with_a_grant_answers_the_same_call_again_without_asking(
    workspace: Path, workers: Workers, tmp_path: Path
) -> None:
    command = {"name": "shell", "arguments": {"command": "python3 -c pass"}}
    playbook = write_playbook(
        tmp_path / "pb.json",
        [{"tool_calls": [command]}, {"tool_calls": [command]}, {"content": "ok"}],
    )
    workers.start()
    run = submit(workspace, playbook)
    waiting = wait_for(run, settled)["waiting"]
    bad = lg("fleet", "approve", run, waiting["call_id"], "--grant-hours", "-1", check=False)
    assert bad.returncode == 2 and "positive" in bad.stderr
    lg("fleet", "approve", run, waiting["call_id"], "--grant-hours", "1")
    end = wait_for(
        run, lambda s: settled(s) and (s["waiting"] or {}).get("call_id") != waiting["call_id"]
    )
    assert end["status"] == "finished", end  # the second command did not wait
    decisions = [r["data"] for r in journal(run) if r["type"] == "decision"]
    assert [d["by"].split()[0] for d in decisions][1] == "grant", decisions
    grants = json.loads(lg("grants", "list", "--json", cwd=workspace).stdout)
    assert len(grants) == 1 and grants[0]["created_by"].endswith("(fleet)"), grants


def test_the_update_refuses_a_grant_with_a_denial_or_for_negative_hours(
    workspace: Path, workers: Workers, tmp_path: Path
) -> None:
    """What a client other than the CLI could send: the validator refuses it."""
    from luminaguard.errors import UsageError
    from luminaguard.fleet.client import decide
    from luminaguard.fleet.data import Answer
    from tests.fleet.conftest import on_fleet

    command = {"name": "shell", "arguments": {"command": "python3 -c pass"}}
    playbook = write_playbook(tmp_path / "pb.json", [{"tool_calls": [command]}, {"content": "ok"}])
    workers.start()
    run = submit(workspace, playbook)
    call = wait_for(run, settled)["waiting"]["call_id"]
    for approved, hours in ((False, 1.0), (True, -1.0)):
        answer = Answer(call, approved, "someone (fleet)", grant_hours=hours)
        with pytest.raises(UsageError, match="a grant goes with an approval"):
            on_fleet(lambda client, a=answer: decide(client, run, a))
    assert status(run)["status"] == "waiting"
