"""OAuth 2.1 against the SDK's own authorization server on loopback (see
oauth_server.py): `mcp login` through the browser (the test plays the browser),
tokens kept outside the workspace and reused, an expired token refreshed
without asking again, `mcp logout`, and one clear error when nobody can be
asked. The conformance harness covers discovery variants, scopes, step-up,
pre-registration and client ID metadata documents (test_conformance.py)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from luminaguard.config import McpOAuth, McpServer, SandboxSettings
from luminaguard.errors import McpAuthorizationError, McpServerError
from luminaguard.mcp.client import McpServerHandle
from luminaguard.mcp.oauth import FileTokenStorage, LoopbackAuthorization
from tests.conftest import trust_config

from .test_http import free_port

SERVER = Path(__file__).with_name("oauth_server.py")


class OAuthServer:
    def __init__(self, tmp: Path, lifetime: int) -> None:
        self.port = free_port()
        self.events = tmp / "events.jsonl"
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVER), str(self.port), str(self.events), str(lifetime)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/.well-known/oauth-authorization-server")
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the OAuth test server did not start")

    def seen(self, event: str, **match: str) -> int:
        if not self.events.exists():
            return 0
        rows = [json.loads(line) for line in self.events.read_text().splitlines()]
        return sum(
            1 for r in rows if r["event"] == event and all(r.get(k) == v for k, v in match.items())
        )

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def oauth_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[OAuthServer]:
    server = OAuthServer(tmp_path, getattr(request, "param", 3600))
    yield server
    server.stop()


def write_config(workspace: Path, url: str, port: int) -> None:
    (workspace / "luminaguard.toml").write_text(
        f'[mcp.servers.notes]\nurl = "{url}"\ntimeout_s = 10\n'
        f"[mcp.servers.notes.oauth]\nredirect_port = {port}\n"
    )
    trust_config(workspace)


def login(workspace: Path, data_dir: Path) -> subprocess.CompletedProcess[str]:
    """`luminaguard mcp login`, with this test as the person's browser."""
    env = {**os.environ, "XDG_STATE_HOME": str(data_dir.parent)}
    trust_config(workspace, data_dir)
    proc = subprocess.Popen(
        [sys.executable, "-m", "luminaguard", "mcp", "login", "notes", "--no-browser", "--workspace", str(workspace)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    assert proc.stderr is not None
    lines: list[str] = []
    # Bounded: the command gives up on its own within its start-up timeout.
    for line in proc.stderr:
        lines.append(line)
        if line.strip().startswith("http://"):
            # The browser: the authorization server approves and redirects
            # to the loopback listener of the login command.
            page = httpx.get(line.strip(), follow_redirects=True, timeout=10)
            assert page.status_code == 200 and "authorization received" in page.text
            break
    out, err = proc.communicate(timeout=30)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "".join(lines) + err)


def handle(url: str, workspace: Path, data_dir: Path, port: int) -> McpServerHandle:
    return McpServerHandle(
        "notes",
        McpServer(url=url, timeout_s=10, oauth=McpOAuth(redirect_port=port)),
        workspace=workspace,
        data_dir=data_dir,
        sandbox=SandboxSettings(),
    )


async def whoami(h: McpServerHandle) -> str:
    try:
        return h.render(await h.call_tool("whoami", {}))[0]
    finally:
        await h.close()


def test_nobody_to_ask_gives_one_clear_error_naming_the_login_command(
    oauth_server: OAuthServer, workspace: Path, data_dir: Path
) -> None:
    h = handle(oauth_server.url, workspace, data_dir, free_port())
    started = time.monotonic()
    with pytest.raises(McpServerError, match=r"run `luminaguard mcp login notes` first"):
        asyncio.run(whoami(h))
    assert time.monotonic() - started < 10
    assert oauth_server.seen("authorize") == 0


def test_login_in_the_browser_then_the_stored_token_is_reused(
    oauth_server: OAuthServer, workspace: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "state" / "luminaguard"
    port = free_port()
    write_config(workspace, oauth_server.url, port)
    r = login(workspace, data_dir)
    assert r.returncode == 0, r.stderr
    assert "notes: connected, 1 tools; tokens stored in" in r.stdout
    assert "Open this address to authorize LuminaGuard" in r.stderr
    assert oauth_server.seen("authorize") == 1
    assert oauth_server.seen("token", grant="authorization_code") == 1

    stored = data_dir / "mcp-oauth" / "notes.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o700
    assert workspace.resolve() not in stored.resolve().parents
    assert json.loads(stored.read_text())["tokens"]["access_token"]
    assert not any("access_token" in p.read_text() for p in workspace.rglob("*") if p.is_file())

    # A later run, with nobody to ask, gets in on the stored token.
    assert asyncio.run(whoami(handle(oauth_server.url, workspace, data_dir, port))) == "authorized"
    assert oauth_server.seen("authorize") == 1

    env = {**os.environ, "XDG_STATE_HOME": str(data_dir.parent)}
    out = subprocess.run(
        [sys.executable, "-m", "luminaguard", "mcp", "logout", "notes", "--workspace", str(workspace)],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert out.returncode == 0 and "stored tokens removed" in out.stdout
    assert not stored.exists()
    with pytest.raises(McpServerError, match="mcp login notes"):
        asyncio.run(whoami(handle(oauth_server.url, workspace, data_dir, port)))


@pytest.mark.parametrize("oauth_server", [1], indirect=True)
def test_an_expired_token_is_refreshed_without_asking_again(
    oauth_server: OAuthServer, workspace: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "state" / "luminaguard"
    port = free_port()
    write_config(workspace, oauth_server.url, port)
    assert login(workspace, data_dir).returncode == 0
    time.sleep(2.2)  # the access token (1 s) has expired
    assert asyncio.run(whoami(handle(oauth_server.url, workspace, data_dir, port))) == "authorized"
    assert oauth_server.seen("token", grant="refresh_token") >= 1
    assert oauth_server.seen("authorize") == 1
    tokens = json.loads((data_dir / "mcp-oauth" / "notes.json").read_text())
    assert tokens["expires_at"] > time.time() - 1


def test_tokens_stored_for_another_url_are_not_sent(tmp_path: Path) -> None:
    from mcp.shared.auth import OAuthToken

    path = tmp_path / "t.json"
    asyncio.run(
        FileTokenStorage(path, "https://a.example/mcp").set_tokens(
            OAuthToken(access_token="secret-a", token_type="Bearer", expires_in=60)
        )
    )
    assert asyncio.run(FileTokenStorage(path, "https://a.example/mcp").get_tokens()) is not None
    assert asyncio.run(FileTokenStorage(path, "https://b.example/mcp").get_tokens()) is None


def test_a_refused_authorization_is_reported() -> None:
    async def scenario() -> None:
        port = free_port()
        auth = LoopbackAuthorization(port, notify=lambda _: None, open_browser=False)
        await auth.redirect("https://as.example/authorize")
        async with httpx.AsyncClient() as client:
            miss = await client.get(f"http://127.0.0.1:{port}/favicon.ico")
            assert miss.status_code == 404
            page = await client.get(
                f"http://127.0.0.1:{port}/callback?error=access_denied&error_description=no+thanks"
            )
            assert page.status_code == 200
        with pytest.raises(McpAuthorizationError, match="access_denied no thanks"):
            await auth.callback()

    asyncio.run(scenario())


def test_a_port_in_use_is_one_clear_error() -> None:
    async def scenario() -> None:
        port = free_port()
        blocker = await asyncio.start_server(lambda r, w: None, "127.0.0.1", port)
        try:
            auth = LoopbackAuthorization(port, notify=lambda _: None, open_browser=False)
            with pytest.raises(McpAuthorizationError, match=re.escape(f"127.0.0.1:{port}")):
                await auth.redirect("https://as.example/authorize")
        finally:
            blocker.close()

    asyncio.run(scenario())


def test_a_configured_clients_secret_is_never_written(tmp_path: Path) -> None:
    from mcp.shared.auth import OAuthClientInformationFull

    info = OAuthClientInformationFull(
        client_id="c", client_secret="configured-secret", redirect_uris=None
    )
    path = tmp_path / "t.json"
    asyncio.run(FileTokenStorage(path, "https://a/mcp", configured=True).set_client_info(info))
    assert not path.exists()
    # A registration the server made (its secret issued then) is kept.
    asyncio.run(FileTokenStorage(path, "https://a/mcp").set_client_info(info))
    assert "configured-secret" in path.read_text()


def test_an_unattended_run_goes_on_without_the_server_and_says_why_in_one_line(
    oauth_server: OAuthServer, workspace: Path, tmp_path: Path
) -> None:
    write_config(workspace, oauth_server.url, free_port())
    playbook = tmp_path / "p.json"
    playbook.write_text(json.dumps({"steps": [{"content": "done"}]}))
    r = subprocess.run(
        [sys.executable, "-m", "luminaguard", "run", "t", "--workspace", str(workspace), "--playbook", str(playbook)],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert (
        "MCP server notes is unavailable, its tools are not offered: "
        "MCP server notes needs authorization: run `luminaguard mcp login notes` first"
    ) in r.stdout
    assert "Traceback" not in r.stdout + r.stderr


@pytest.mark.parametrize("oauth_server", [1], indirect=True)
def test_two_processes_share_rotating_refresh_tokens(
    oauth_server: OAuthServer, workspace: Path, tmp_path: Path
) -> None:
    """Swarm workers using one server: when one refreshes (the server rotates
    the refresh token), the other picks up the new one instead of failing."""
    data_dir = tmp_path / "state" / "luminaguard"
    port = free_port()
    write_config(workspace, oauth_server.url, port)
    assert login(workspace, data_dir).returncode == 0

    async def scenario() -> tuple[str, str]:
        a = handle(oauth_server.url, workspace, data_dir, port)
        b = handle(oauth_server.url, workspace, data_dir, port)
        try:
            await a.list_tools()
            await b.list_tools()  # both hold the same tokens now
            await asyncio.sleep(2.2)  # and both have expired
            first = a.render(await a.call_tool("whoami", {}))[0]  # refreshes, rotating
            second = b.render(await b.call_tool("whoami", {}))[0]
            return first, second
        finally:
            await a.close()
            await b.close()

    assert asyncio.run(scenario()) == ("authorized", "authorized")
    assert oauth_server.seen("authorize") == 1
    assert oauth_server.seen("token", grant="refresh_token") >= 2
