"""The service's other pages, over real HTTP to a real `luminaguard serve`:
a running run's page is sent each journal record as it lands; the swarm page
shows every swarm of the user with its agents; the metrics page charts the
providers and the warm pools. Each needs the token, and nothing on them is
markup from outside."""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path

from luminaguard.audit.run import RunRecorder
from luminaguard.core.card import DiffCard
from luminaguard.core.risk import Assessment, Risk
from luminaguard.llm.metrics import ProviderMetrics
from luminaguard.messages import AssistantTurn, Usage
from luminaguard.policy.inbox import InboxStore
from luminaguard.swarm.queue import Queue, queue_path
from tests.service.test_web_inbox import Service, data_dir, service  # noqa: F401 (fixture)
from tests.swarm.test_coordinator import repo  # noqa: F401 (fixture)
from tests.test_cli import lg

HOSTILE = "<script>alert(1)</script><b>x</b>"


def stream(svc: Service, page: str, seen: str) -> tuple[http.client.HTTPConnection, object]:
    conn = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=20)
    conn.request(
        "GET",
        f"/events?page={page}&seen={seen}",
        headers={"Cookie": f"luminaguard_token={svc.token}"},
    )
    response = conn.getresponse()
    assert response.status == 200
    return conn, response


def events(response: object, until: str, deadline_s: float = 20) -> list[tuple[str, str]]:
    """Server-sent events as (event, data), read until one whose data holds ``until``."""
    got: list[tuple[str, str]] = []
    kind, data = "message", ""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        line = response.fp.readline().decode()  # type: ignore[attr-defined]
        if not line:
            break
        line = line.rstrip("\n")
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and data:
            got.append((kind, data))
            if until in data:
                return got
            kind, data = "message", ""
    raise AssertionError(f"no event with {until!r}: {got}")


def test_a_running_runs_page_is_sent_each_record_as_it_lands(
    service: Service,  # noqa: F811
    tmp_path: Path,
) -> None:
    recorder = RunRecorder(data_dir(), task="follow me", workspace=tmp_path, model="scripted")
    recorder.record("user", {"content": "first"})
    page = service.signed_in("GET", f"/runs/{recorder.run_id}").read_body  # type: ignore[attr-defined]
    assert "first" in page and "<script src='/live.js'" in page
    seen = page.split("data-version='")[1].split("'")[0]
    conn, response = stream(service, f"/runs/{recorder.run_id}", seen)
    try:
        recorder.record(
            "model_turn",
            {
                "content": f"thinking {HOSTILE}",
                "tool_calls": [{"name": "read_file", "arguments": {"path": "a"}}],
            },
        )
        recorder.record("tool_result", {"call_id": "c1", "name": "read_file", "output": "hello"})
        got = events(response, "hello")
        records = [json.loads(d) for k, d in got if k == "record"]
        # Each new record once, in order, as text (the page's script sets it as text).
        assert [r["type"] for r in records] == ["model_turn", "tool_result"]
        assert records[0]["text"] == f'thinking {HOSTILE}\n→ read_file({{"path": "a"}})'
        assert "first" not in json.dumps(records)  # the page had it already
        recorder.finish("finished", {})
        got = events(response, "changed")
        assert got[-1] == ("message", "changed")  # ended: the page reloads to its verdict
        assert [json.loads(d)["type"] for k, d in got if k == "record"] == ["run_finished"]
    finally:
        conn.close()
    # Someone without the token gets none of it.
    assert service.request("GET", f"/events?page=/runs/{recorder.run_id}").status == 401


def test_the_swarm_page_shows_each_swarm_its_agents_and_what_they_wait_for(
    service: Service,  # noqa: F811
    repo: Path,  # noqa: F811
) -> None:
    assert "No swarm yet" in service.signed_in("GET", "/swarms").read_body  # type: ignore[attr-defined]
    r = lg("swarm", "add", f"fix {HOSTILE}", "--repo", str(repo), "--count", "2")
    assert r.returncode == 0, r.stderr
    first, _ = r.stdout.split()
    queue = Queue(queue_path(repo))
    try:
        queue.agent_beat(
            "agent-1",
            pid=1234,
            state="working",
            item=first,
            run_id="run-7",
            action=f"shell {HOSTILE}",
        )
    finally:
        queue.close()
    inbox = InboxStore(data_dir() / "inbox.db")
    try:
        inbox.put(
            DiffCard(
                tool="shell",
                arguments={"command": "make"},
                assessment=Assessment.of(Risk.ORANGE, "x", "y"),
                kind="command",
                context={"run_id": "run-7", "agent": "agent-1", "task": "t", "step": 1},
            )
        )
    finally:
        inbox.close()
    page = service.signed_in("GET", "/swarms").read_body  # type: ignore[attr-defined]
    assert str(repo) in page and "2 queued · 0 running" in page
    assert "agent-1" in page and "working" in page and "/runs/run-7" in page
    assert "1 approval(s) waiting" in page
    assert HOSTILE not in page and "&lt;script&gt;" in page
    assert service.request("GET", "/swarms").status == 401


def test_the_metrics_page_charts_providers_and_pools(
    service: Service,  # noqa: F811
    workspace: Path,
) -> None:
    store = ProviderMetrics(data_dir() / "metrics.db")
    try:
        for i in range(20):
            store.record(
                request_id=f"r{i}",
                spec=f"local/{HOSTILE}",
                task_type="code",
                duration_s=0.01 * (i + 1),
                turn=None
                if i % 5 == 0
                else AssistantTurn("ok", usage=Usage(10, 5), cost_usd=0.001),
                error_type="timeout" if i % 5 == 0 else None,
            )
    finally:
        store.close()
    r = lg("sandbox", "exec", "--workspace", str(workspace), "--read-only", "--", "true")
    assert r.returncode == 0, r.stderr
    page = service.signed_in("GET", "/stats?hours=1").read_body  # type: ignore[attr-defined]
    assert HOSTILE not in page and "local/&lt;script&gt;" in page and "20 requests" in page
    # Latency p50/p95, the share that succeeded (16 of 20), cost: three charts.
    assert page.count("<svg") >= 3 + 2  # and two for the warm pool
    assert "ok 80%" in page
    assert "bwrap · " + str(workspace.resolve()) in page
    assert service.signed_in("GET", "/stats?hours=nonsense").status == 200
    assert service.request("GET", "/stats").status == 401


def test_metrics_count_runs_by_outcome(
    service: Service,  # noqa: F811
    tmp_path: Path,
) -> None:
    def runs() -> list[str]:
        body = service.request(
            "GET", "/metrics", headers={"Authorization": f"Bearer {service.token}"}
        ).read_body  # type: ignore[attr-defined]
        return [line for line in body.splitlines() if line.startswith("luminaguard_runs{")]

    assert runs() == []
    first = RunRecorder(data_dir(), task="one", workspace=tmp_path, model="scripted")
    second = RunRecorder(data_dir(), task="two", workspace=tmp_path, model="scripted")
    assert runs() == ['luminaguard_runs{outcome="running"} 2']
    first.finish("finished", {})
    second.finish("denied", {})
    assert runs() == [
        'luminaguard_runs{outcome="denied"} 1',
        'luminaguard_runs{outcome="finished"} 1',
    ]
