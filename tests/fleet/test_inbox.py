"""Fleet cards in the local approval inbox (`fleet inbox`, `serve` with
fleet.inbox): decided there, carried back through the run's Update."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.conftest import LUMINAGUARD, write_playbook
from tests.fleet.conftest import Workers, lg, on_fleet, settled, status, wait_for

WRITE = {"name": "write_file", "arguments": {"path": "a.txt", "content": "a\n"}}


def pending() -> list[dict[str, Any]]:
    """The inbox's pending items, as `approvals list --json` shows them (read here)."""
    from luminaguard.config import load_settings
    from luminaguard.policy.inbox import InboxStore

    store = InboxStore(load_settings(Path.cwd()).data_dir / "inbox.db")
    try:
        return [i.to_dict() for i in store.pending()]
    finally:
        store.close()


def bridge_once() -> str:
    """One pass of the bridge, as `fleet inbox --once` makes it, in this process."""
    from luminaguard.config import load_settings
    from luminaguard.fleet.bridge import InboxBridge
    from luminaguard.policy.inbox import InboxStore

    store = InboxStore(load_settings(Path.cwd()).data_dir / "inbox.db")
    try:
        return "".join(f"{line}\n" for line in on_fleet(lambda c: InboxBridge(c, store).sync()))
    finally:
        store.close()


def submit(ws: Path, playbook: Path, *extra: str) -> str:
    out = lg(
        "fleet", "submit", "--workspace", str(ws), "--playbook", str(playbook), *extra, "write"
    )
    return out.stdout.strip().splitlines()[-1]


def test_a_card_decided_in_the_inbox_reaches_its_run_and_never_a_second_call(
    workspace: Path, workers: Workers, tmp_path: Path, data_dir: Path
) -> None:
    workers.start()
    # The same call twice: two cards with the same content, for two calls.
    playbook = write_playbook(
        tmp_path / "pb.json",
        [{"tool_calls": [WRITE]}, {"tool_calls": [WRITE]}, {"content": "done"}],
    )
    run = submit(workspace, playbook)
    first = wait_for(run, settled)["waiting"]
    assert "posted" in lg("fleet", "inbox", "--once").stdout
    [item] = json.loads(lg("approvals", "list", "--json").stdout)
    assert item["run_id"] == run and item["card"]["hash"] == first["card_hash"]
    assert item["card"]["context"]["call_id"] == first["call_id"]
    assert bridge_once() == ""  # posted once, however often the bridge passes

    lg("approvals", "decide", str(item["id"]), "deny", "--reason", "not this one")
    assert "denied" in bridge_once()
    moved = wait_for(
        run,
        lambda s: settled(s) and (s["waiting"] or {}).get("call_id") != first["call_id"],
    )
    second = moved["waiting"]
    assert second is not None, moved
    assert second["card_hash"] == first["card_hash"] and second["call_id"] != first["call_id"]
    # The denial was of the first call: the second asks again.
    bridge_once()
    [again] = pending()
    assert again["id"] != item["id"] and again["card"]["context"]["call_id"] == second["call_id"]
    assert status(run)["status"] == "waiting"

    lg("approvals", "decide", str(again["id"]), "approve", "--grant-hours", "2")
    bridge_once()
    assert wait_for(run, lambda s: s["status"] != "waiting")["status"] in ("running", "finished")
    assert wait_for(run, settled)["status"] == "finished"
    assert (workspace / "a.txt").read_text() == "a\n"
    records = json.loads(lg("audit", "show", run, "--json").stdout)
    records = records["records"] if isinstance(records, dict) else records
    decisions = [r["data"] for r in records if r["type"] == "decision"]
    assert [d["approved"] for d in decisions] == [False, True]
    assert all(d["by"].endswith("(fleet inbox)") for d in decisions), decisions
    assert "not this one" in decisions[0]["reason"]
    # The inbox's grant went with the approval, and was made where the call ran.
    grants = json.loads(lg("grants", "list", "--json", cwd=workspace).stdout)
    assert [g["created_by"] for g in grants] == [decisions[1]["by"]], grants
    assert decisions[1]["grant"] == grants[0]["id"]


def test_a_card_decided_elsewhere_leaves_the_inbox_and_a_refused_one_is_asked_again(
    workspace: Path, workers: Workers, tmp_path: Path
) -> None:
    import getpass

    me = getpass.getuser()
    roles = tmp_path / "roles.toml"
    roles.write_text(f'[roles.reader]\nmax_risk = "green"\n[principals.{me}]\nrole = "reader"\n')
    workers.start()
    playbook = write_playbook(tmp_path / "pb.json", [{"tool_calls": [WRITE]}, {"content": "done"}])

    # Decided with `fleet approve`: the inbox's copy is withdrawn.
    run = submit(workspace, playbook)
    waiting = wait_for(run, settled)["waiting"]
    bridge_once()
    assert [i["run_id"] for i in pending()] == [run]
    lg("fleet", "approve", run, waiting["call_id"])
    wait_for(run, lambda s: s["status"] == "finished")
    assert "withdrew" in bridge_once()
    assert pending() == []

    # Approved in the inbox by someone the run's policy does not let approve: refused, asked again.
    other = tmp_path / "other"
    other.mkdir()
    run = submit(other, playbook, "--policy", str(roles))
    wait_for(run, settled)
    bridge_once()
    [item] = pending()
    lg("approvals", "decide", str(item["id"]), "approve")
    said = bridge_once()
    assert "refused" in said and "may not approve" in said, said
    [again] = pending()
    assert again["id"] != item["id"] and status(run)["status"] == "waiting"
    assert not (other / "a.txt").exists()


def swarms_page(data_dir: Path) -> str:
    import http.client

    from luminaguard.service.web import read_state, token

    state = read_state(data_dir)
    assert state is not None
    conn = http.client.HTTPConnection("127.0.0.1", int(state["port"]), timeout=10)
    conn.request("GET", "/swarms", headers={"Cookie": f"luminaguard_token={token(data_dir)}"})
    response = conn.getresponse()
    assert response.status == 200
    return response.read().decode()


def test_serve_shows_the_fleets_cards_in_its_inbox_and_its_runs_on_a_page(
    workspace: Path, workers: Workers, tmp_path: Path, data_dir: Path
) -> None:
    workers.start()
    playbook = write_playbook(tmp_path / "pb.json", [{"tool_calls": [WRITE]}, {"content": "done"}])
    run = submit(workspace, playbook)
    wait_for(run, settled)
    serve = subprocess.Popen(
        [*LUMINAGUARD, "serve"],
        env={**os.environ, "LUMINAGUARD_FLEET__INBOX": "true"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not pending():
            assert time.monotonic() < deadline and serve.poll() is None, "serve posted nothing"
            time.sleep(0.3)
        [item] = pending()
        assert item["run_id"] == run
        # The swarms page shows the fleet's runs, and what each waits on.
        page = swarms_page(data_dir)
        while run not in page:  # the pass that posted the card tells the page after
            assert time.monotonic() < deadline, page
            time.sleep(0.2)
            page = swarms_page(data_dir)
        assert "waiting" in page and "write_file (yellow)" in page, page
        lg("approvals", "decide", str(item["id"]), "approve")
        assert wait_for(run, lambda s: s["status"] == "finished")["status"] == "finished"
    finally:
        serve.terminate()
        out, _ = serve.communicate(timeout=30)
    assert serve.returncode == 0, out
    assert f"approved #{item['id']} in run {run}" in out, out


def test_a_card_stays_in_the_inbox_while_no_worker_answers_for_its_run(
    workspace: Path, workers: Workers, tmp_path: Path
) -> None:
    playbook = write_playbook(tmp_path / "pb.json", [{"tool_calls": [WRITE]}, {"content": "done"}])
    worker = workers.start()
    run = submit(workspace, playbook)
    wait_for(run, settled)
    bridge_once()
    [item] = pending()
    worker.kill()
    worker.wait()
    # Nobody can say what the run waits on now: its card is kept, not withdrawn.
    assert "withdrew" not in bridge_once()
    assert [i["id"] for i in pending()] == [item["id"]]
    workers.start()
    lg("approvals", "decide", str(item["id"]), "approve")
    deadline = time.monotonic() + 30
    while "approved" not in bridge_once():
        assert time.monotonic() < deadline, status(run)
        time.sleep(0.3)
    assert wait_for(run, lambda s: s["status"] == "finished")["status"] == "finished"
