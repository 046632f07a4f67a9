"""`luminaguard serve`: the web inbox and /metrics, over real HTTP on loopback,
with the service a real process."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from luminaguard.core.card import DiffCard
from luminaguard.core.risk import Assessment, Risk
from luminaguard.policy.inbox import InboxStore
from luminaguard.service.web import csrf_for
from tests.conftest import LUMINAGUARD, trust_config, write_playbook
from tests.test_cli import lg


class Service:
    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc = proc
        parts = urllib.parse.urlsplit(url)
        self.port = int(parts.port or 0)
        self.token = urllib.parse.parse_qs(parts.query)["token"][0]

    def request(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, body: str = ""
    ) -> http.client.HTTPResponse:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request(method, path, body=body or None, headers=headers or {})
        response = conn.getresponse()
        response.read_body = response.read().decode()  # type: ignore[attr-defined]
        conn.close()
        return response

    def signed_in(self, method: str, path: str, **kw: object) -> http.client.HTTPResponse:
        headers = {"Cookie": f"luminaguard_token={self.token}", **kw.pop("headers", {})}  # type: ignore[dict-item]
        return self.request(method, path, headers=headers, **kw)  # type: ignore[arg-type]

    def decide(self, item: int, verdict: str, **extra: str) -> http.client.HTTPResponse:
        form = {"csrf": csrf_for(self.token), "id": str(item), "verdict": verdict, **extra}
        return self.signed_in(
            "POST",
            "/decide",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            body=urllib.parse.urlencode(form),
        )


@pytest.fixture
def service() -> Iterator[Service]:
    proc = subprocess.Popen(
        [*LUMINAGUARD, "serve"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"(http://127\.0\.0\.1:\d+/\?token=\S+)", line)
        assert found, line + (proc.stderr.read() if proc.stderr else "")
        yield Service(proc, found.group(1))
    finally:
        proc.terminate()
        proc.wait(10)


def data_dir() -> Path:
    return Path(os.environ["XDG_STATE_HOME"]) / "luminaguard"


def put_card(**effects: object) -> int:
    card = DiffCard(
        tool="shell",
        arguments={"command": "rm '<script>alert(1)</script>'"},
        assessment=Assessment.of(Risk.ORANGE, "deletes", "deletes a file"),
        kind="command",
        effects={"deleted": ["<script>alert(1)</script>\x1b]0;owned\x07.txt"], **effects},
        context={"run_id": "r1", "agent": "agent <b>1</b>", "task": "tidy up", "step": 1},
    )
    store = InboxStore(data_dir() / "inbox.db")
    try:
        return store.put(card)
    finally:
        store.close()


def test_the_page_needs_the_token_and_puts_it_in_a_cookie(service: Service) -> None:
    assert service.request("GET", "/").status == 401
    assert service.request("GET", "/?token=wrong").status == 403
    assert service.request("GET", "/", headers={"Cookie": "luminaguard_token=wrong"}).status == 403
    opened = service.request("GET", f"/?token={service.token}")
    assert opened.status == 303 and opened.getheader("Location") == "/"  # the token leaves the URL
    cookie = opened.getheader("Set-Cookie") or ""
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    page = service.signed_in("GET", "/")
    assert page.status == 200
    # Another name pointed at 127.0.0.1 (DNS rebinding) is not this service.
    rebound = service.signed_in("GET", "/", headers={"Host": f"evil.example:{service.port}"})
    assert rebound.status == 421
    csp = page.getheader("Content-Security-Policy") or ""
    # Only our own script file may run: nothing inline, nothing from elsewhere.
    assert "default-src 'none'" in csp and "script-src 'self';" in csp
    assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]


def test_a_card_from_outside_is_shown_inert(service: Service) -> None:
    put_card()
    body = service.signed_in("GET", "/").read_body  # type: ignore[attr-defined]
    assert "Approvals waiting: 1" in body
    # The grant's scope, in words, before it is made.
    assert "Approve, and grant shell exactly `rm &#x27;&lt;script&gt;" in body
    assert "up to orange for 8 h" in body
    assert body.count("<script") == 1 and "<script src='/live.js' defer>" in body  # ours only
    assert "<script>" not in body and "<b>1</b>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "\x1b" not in body and "\x07" not in body


def test_a_decision_needs_the_csrf_token_and_lands_in_the_shared_inbox(service: Service) -> None:
    item = put_card()
    no_csrf = service.signed_in(
        "POST",
        "/decide",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        body=f"id={item}&verdict=approve",
    )
    assert no_csrf.status == 403
    other_site = service.signed_in(
        "POST",
        "/decide",
        headers={
            "Origin": "http://evil.example",
            "Content-Type": "application/x-www-form-urlencoded",
        },
        body=urllib.parse.urlencode(
            {"csrf": csrf_for(service.token), "id": item, "verdict": "approve"}
        ),
    )
    assert other_site.status == 403
    no_cookie = service.request(
        "POST",
        "/decide",
        body=urllib.parse.urlencode({"csrf": csrf_for(service.token), "id": item}),
    )
    assert no_cookie.status == 401
    assert json.loads(lg("approvals", "list", "--json").stdout)[0]["id"] == item  # still pending
    denied = service.decide(item, "deny", reason="not today")
    assert denied.status == 303
    store = InboxStore(data_dir() / "inbox.db")
    try:
        decided = store.get(item)
    finally:
        store.close()
    assert decided is not None and decided.status == "denied" and decided.reason == "not today"
    assert json.loads(lg("approvals", "list", "--json").stdout) == []


def test_metrics_need_the_bearer_token(service: Service) -> None:
    put_card()
    assert service.request("GET", "/metrics").status == 401
    wrong = service.request("GET", "/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 403
    ok = service.request("GET", "/metrics", headers={"Authorization": f"Bearer {service.token}"})
    assert ok.status == 200
    assert "luminaguard_approvals_pending 1" in ok.read_body  # type: ignore[attr-defined]


def test_status_stop_and_open(service: Service) -> None:
    status = lg("serve", "--status")
    assert status.returncode == 0 and f"127.0.0.1:{service.port}" in status.stdout
    opened = lg("open", "--no-browser")
    assert opened.stdout.strip() == f"http://127.0.0.1:{service.port}/?token={service.token}"
    assert lg("serve").returncode == 2  # one service per user
    stopped = lg("serve", "--stop")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert service.proc.wait(10) == 0
    assert lg("serve", "--status").returncode == 1
    assert lg("open", "--no-browser").returncode == 2


def test_a_run_waiting_in_the_inbox_goes_on_when_approved_from_the_page(
    service: Service, workspace: Path, tmp_path: Path
) -> None:
    pb = write_playbook(
        tmp_path / "p.json",
        [
            {
                "tool_calls": [
                    {"name": "write_file", "arguments": {"path": "new.txt", "content": "hi"}}
                ]
            },
            {"content": "done"},
        ],
    )
    run = subprocess.Popen(
        [*LUMINAGUARD, "run", "write it", "--workspace", str(workspace), "--playbook", str(pb),
         "--approver", "inbox"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        found = None
        while found is None and time.monotonic() < deadline:
            page = service.signed_in("GET", "/").read_body  # type: ignore[attr-defined]
            found = re.search(r"id='card-(\d+)'", page)
            time.sleep(0.1)
        assert found, "the card never reached the web inbox"
        assert service.decide(int(found.group(1)), "approve").status == 303
        out, err = run.communicate(timeout=60)
    finally:
        run.kill()
    assert run.returncode == 0, out + err
    assert (workspace / "new.txt").read_text() == "hi"
    assert "approved by" in out


def pool_stats() -> list[dict[str, object]]:
    import socket

    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(str(data_dir() / "service.sock"))
    client.sendall(b'{"op": "stats"}\n')
    answer = json.loads(client.makefile().readline())
    client.close()
    return list(answer["pools"])


def test_sandbox_exec_acquires_from_the_services_warm_pool(
    sandbox_backend: str, service: Service, workspace: Path
) -> None:
    (workspace / "f.txt").write_text("from the workspace\n")
    sock = data_dir() / "service.sock"
    assert sock.stat().st_mode & 0o777 == 0o600
    backend = ["--backend", sandbox_backend]
    for _ in range(3):
        r = lg(
            "sandbox", "exec", "--workspace", str(workspace), *backend, "--read-only",
            "--", "cat", "f.txt",
        )  # fmt: skip
        assert r.returncode == 0 and r.stdout == "from the workspace\n", r.stderr
    [pool] = pool_stats()
    # The micro-VM's clone pool is one for every workspace.
    shown = "*" if sandbox_backend == "microvm" else str(workspace.resolve())
    assert pool["workspace"] == shown and pool["backend"] == sandbox_backend
    # One pool outlived three CLI processes, and a warm sandbox was ready for the later ones.
    assert pool["served"] == 3 and int(pool["served_idle"]) >= 1  # type: ignore[call-overload]
    # Still confined: the workspace is read-only there, and an exit code passes through.
    r = lg(
        "sandbox",
        "exec",
        "--workspace",
        str(workspace),
        *backend,
        "--read-only",
        "--",
        "sh",
        "-c",
        "echo x > g; exit 3",
    )
    assert r.returncode == 3 and not (workspace / "g").exists()
    metrics = service.request(
        "GET", "/metrics", headers={"Authorization": f"Bearer {service.token}"}
    )
    body = metrics.read_body  # type: ignore[attr-defined]
    label = f'backend="{sandbox_backend}"'
    assert re.search(rf"luminaguard_pool_served\{{workspace=.*{label}\}} 4", body), body
    assert re.search(rf'luminaguard_pool_acquire_ms\{{.*{label},quantile="0.5"\}}', body)
    status = json.loads(lg("pool", "status", "--json").stdout)
    assert status["service"] is True and status["pools"][0]["served"] == 4
    assert f"{sandbox_backend} " in lg("pool", "status").stdout


def test_a_runs_read_only_steps_use_the_services_warm_pool(
    sandbox_backend: str, service: Service, workspace: Path, tmp_path: Path
) -> None:
    """On every backend (the sandbox's fixture first: the service inherits
    where the micro-VM's image is)."""
    (workspace / "f.txt").write_text("from the workspace\n")
    steps = [
        {"tool_calls": [{"name": "shell", "arguments": {"command": "cat f.txt"}}]},
        {"tool_calls": [{"name": "shell", "arguments": {"command": "ls"}}]},
        {"content": "done"},
    ]
    pb = write_playbook(tmp_path / "p.json", steps)
    r = lg(
        "run", "look", "--workspace", str(workspace), "--playbook", str(pb),
        "--sandbox", sandbox_backend, "--json",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "from the workspace" in r.stdout
    # Both steps ran in the service's pool (a run alone would have used its own).
    [pool] = pool_stats()
    assert pool["backend"] == sandbox_backend and pool["served"] == 2, pool
    # The same settings as `sandbox exec`: the same pool serves it too.
    r = lg(
        "sandbox", "exec", "--workspace", str(workspace), "--backend", sandbox_backend,
        "--read-only", "--", "cat", "f.txt",
    )  # fmt: skip
    assert r.returncode == 0 and r.stdout == "from the workspace\n"
    [pool] = pool_stats()
    assert pool["served"] == 3


def test_sandbox_exec_through_the_service_imports_nothing_heavy(
    service: Service, workspace: Path
) -> None:
    """The quick path: the service reads the settings and runs the command
    before the full CLI (argparse over every command, pydantic) is imported."""
    (workspace / "f.txt").write_text("quick\n")
    argv = [*LUMINAGUARD, "sandbox", "exec", "--workspace", str(workspace), "--read-only"]
    r = subprocess.run(
        [sys.executable, "-X", "importtime", *argv[1:], "--", "sh", "-c", "cat f.txt; exit 5"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 5 and r.stdout == "quick\n", r.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in r.stderr.splitlines() if "|" in line}
    assert "luminaguard.quick" in imported
    assert not {"pydantic", "luminaguard.cli", "luminaguard.config", "asyncio"} & imported
    [pool] = pool_stats()
    assert pool["served"] == 1


@pytest.mark.parametrize(
    "config",
    [
        pytest.param('[sandbox]\nnetwork = "allow:example.com"\n', id="a-network"),
        pytest.param('data_dir = "{elsewhere}"\n', id="another-data-dir"),
    ],
)
def test_the_service_declines_what_its_pool_does_not_serve(
    service: Service, workspace: Path, tmp_path: Path, config: str
) -> None:
    """A workspace whose sandbox has a network, or whose settings keep their
    audit log and grants in another data directory: the quick path hands the
    command back, and the full CLI runs it as it always would."""
    elsewhere = tmp_path / "elsewhere"
    (workspace / "luminaguard.toml").write_text(config.format(elsewhere=elsewhere))
    trust_config(workspace)
    r = lg(
        "sandbox", "exec", "--workspace", str(workspace), "--read-only",
        "--", "sh", "-c", "echo ran; exit 4",
    )  # fmt: skip
    assert r.returncode == 4 and r.stdout == "ran\n", r.stderr
    assert pool_stats() == []  # nothing ran in the service's pool


# Connects as whoever runs it; the refusal may come (and the socket close)
# before the request is sent, so a failed send is no reason not to read it.
PEER_PROBE = """
import socket, sys
c = socket.socket(socket.AF_UNIX)
c.connect(sys.argv[1])
try:
    c.sendall(b'{"op": "stats"}\\n')
except OSError:
    pass
print(c.makefile().readline())
"""


def test_the_pool_socket_refuses_another_user(service: Service) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to connect as another uid")
    sock = data_dir() / "service.sock"
    # Open the way on purpose (0700 dir, 0600 socket), so only the peer check stands.
    # Every directory above it that others cannot pass through (deeper under pytest-xdist).
    parents = [p for p in [sock.parent, *sock.parent.parents] if not p.stat().st_mode & 0o001]
    modes = {p: p.stat().st_mode for p in parents}
    try:
        for p in parents:
            p.chmod(modes[p] | 0o005)
        sock.chmod(0o666)
        probe = PEER_PROBE
        r = subprocess.run(
            ["/usr/bin/python3", "-I", "-c", probe, str(sock)],
            user=65534, group=65534, extra_groups=[],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    finally:
        for p, mode in modes.items():
            p.chmod(mode & 0o7777)
        sock.chmod(0o600)
    assert "refused: another user" in r.stdout, r.stdout + r.stderr


def test_the_service_starts_again_after_kill_9_and_no_approval_is_lost(service: Service) -> None:
    import signal

    item = put_card()
    service.proc.send_signal(signal.SIGKILL)
    service.proc.wait(10)
    assert lg("serve", "--status").returncode == 1  # its leftovers are seen for what they are
    again = subprocess.Popen(
        [*LUMINAGUARD, "serve"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert again.stdout is not None
        found = re.search(r"(http://127\.0\.0\.1:\d+/\?token=\S+)", again.stdout.readline())
        assert found, again.stderr.read() if again.stderr else ""
        restarted = Service(again, found.group(1))
        assert restarted.token == service.token  # the install's token, not a new one
        assert f"id='card-{item}'" in restarted.signed_in("GET", "/").read_body  # type: ignore[attr-defined]
        assert restarted.decide(item, "approve").status == 303
        assert pool_stats() == []  # the socket is the new service's
    finally:
        again.terminate()
        again.wait(10)


def test_runs_and_a_journal_with_its_verification(
    service: Service, workspace: Path, tmp_path: Path
) -> None:
    pb = write_playbook(tmp_path / "p.json", [{"content": "all <b>done</b> \x1b[31mred"}])
    r = lg("run", "say it", "--workspace", str(workspace), "--playbook", str(pb))
    assert r.returncode == 0, r.stderr
    [run] = json.loads(lg("audit", "list", "--json").stdout)
    runs = service.signed_in("GET", "/runs").read_body  # type: ignore[attr-defined]
    assert f"/runs/{run['id']}" in runs and "finished" in runs
    page = service.signed_in("GET", f"/runs/{run['id']}").read_body  # type: ignore[attr-defined]
    assert "the journal verifies" in page
    assert "<b>done</b>" not in page and "&lt;b&gt;done&lt;/b&gt;" in page and "\x1b" not in page
    journal = Path(run["path"])
    journal.write_text(journal.read_text().replace("say it", "say IT"))  # tampered
    page = service.signed_in("GET", f"/runs/{run['id']}").read_body  # type: ignore[attr-defined]
    assert "does not verify" in page
    assert service.signed_in("GET", "/runs/..%2F..%2Fetc%2Fpasswd").status == 404
    assert service.request("GET", f"/runs/{run['id']}").status == 401


def test_an_mcp_servers_question_is_answered_from_the_page(service: Service) -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "title": "Your <i>name</i>"},
            "count": {"type": "integer", "minimum": 1, "maximum": 10},
            "colour": {"type": "string", "enum": ["red", "green"]},
            "sure": {"type": "boolean"},
        },
        "required": ["name"],
    }
    store = InboxStore(data_dir() / "inbox.db")
    try:
        item = store.ask(
            {"run_id": "r1", "agent": "a"}, "everything", "Who <b>are</b> you?", schema
        )
    finally:
        store.close()
    page = service.signed_in("GET", "/").read_body  # type: ignore[attr-defined]
    assert f"id='question-{item}'" in page
    assert "Who &lt;b&gt;are&lt;/b&gt; you?" in page and "Your &lt;i&gt;name&lt;/i&gt;" in page
    assert "<option value='green'>" in page and "type='checkbox' name='f.sure'" in page

    def answer(**fields: str) -> http.client.HTTPResponse:
        form = {"csrf": csrf_for(service.token), "id": str(item), "booleans": "sure", **fields}
        return service.signed_in(
            "POST", "/answer",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            body=urllib.parse.urlencode(form),
        )  # fmt: skip

    wrong = answer(action="accept", **{"f.name": "Ada", "f.count": "50"})
    assert wrong.status == 400 and "count" in wrong.read_body  # type: ignore[attr-defined]
    assert answer(action="accept", **{"f.count": "3"}).status == 400  # name is required
    done = answer(action="accept", **{"f.name": "Ada", "f.count": "3", "f.colour": "green"})
    assert done.status == 303
    store = InboxStore(data_dir() / "inbox.db")
    try:
        q = store.question(item)
    finally:
        store.close()
    assert q is not None and q.status == "accept"
    assert q.answer == {"name": "Ada", "count": 3, "colour": "green", "sure": False}
    no_csrf = service.signed_in("POST", "/answer", body=f"id={item}&action=decline")
    assert no_csrf.status == 403
