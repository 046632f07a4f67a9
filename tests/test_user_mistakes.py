"""One clear sentence and exit code 2 for each user mistake, naming the thing."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from tests.test_cli import lg


def one_sentence(r: object, *needles: str) -> None:
    assert r.returncode == 2, (r.stdout, r.stderr)  # type: ignore[attr-defined]
    err = r.stderr.strip()  # type: ignore[attr-defined]
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def test_a_base_url_that_is_not_a_url_is_a_usage_error(workspace: Path) -> None:
    env = {**os.environ, "OPENAI_BASE_URL": "localhost:8080", "OPENAI_API_KEY": "k"}
    r = lg("run", "x", "--workspace", str(workspace), "--model", "openai/m", env=env)
    one_sentence(r, "OPENAI_BASE_URL is 'localhost:8080', not an http:// or https:// URL")


def test_an_unreachable_endpoint_is_named_once(workspace: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "luminaguard"
    config.mkdir(parents=True)
    (config / "luminaguard.toml").write_text("[router]\nbackoff_s = 0\n")
    env = {**os.environ, "OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1", "OPENAI_API_KEY": "k"}
    r = lg(
        "run",
        "x",
        "--workspace",
        str(workspace),
        "--model",
        "openai/m",
        "--approver",
        "none",
        env=env,
    )
    assert r.returncode == 1
    [end] = [line for line in r.stdout.splitlines() if line.startswith("■")]
    assert f"cannot connect to http://127.0.0.1:{port}/v1/chat/completions" in end
    assert "(3 times)" in end and end.count("cannot connect") == 1


def test_a_data_dir_that_is_a_file(tmp_path: Path) -> None:
    file = tmp_path / "state"
    file.write_text("")
    r = lg("audit", "list", env={**os.environ, "LUMINAGUARD_DATA_DIR": str(file)})
    one_sentence(r, f"data_dir: {file} is a file, not a directory")


def test_auto_approve_may_name_one_level(workspace: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('auto_approve = "yellow"\n')
    from luminaguard.core.risk import Risk
    from luminaguard.policy.policyfile import load_policy

    assert load_policy(policy).auto_approve == frozenset({Risk.YELLOW})
    policy.write_text('auto_approve = "greenish"\n')
    one_sentence(lg("grants", "list", "--policy", str(policy)), "auto_approve", "greenish")


def test_an_unknown_environment_key_and_a_non_git_swarm(workspace: Path) -> None:
    r = lg("audit", "list", env={**os.environ, "LUMINAGUARD_SANDBOX__TIMEOT_S": "3"})
    one_sentence(r, "unknown key sandbox.timeot_s")
    one_sentence(lg("swarm", "status", "--repo", str(workspace)), "is not a git repository")


def _user_servers(text: str) -> None:
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "luminaguard"
    config.mkdir(parents=True, exist_ok=True)
    (config / "luminaguard.toml").write_text(text)


def test_an_mcp_url_that_is_not_an_mcp_server(workspace: Path) -> None:
    import http.server
    import threading

    class Page(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/mcp"
    try:
        _user_servers(f'[mcp.servers.web]\nurl = "{url}"\n')
        r = lg("mcp", "tools", "web", "--workspace", str(workspace))
    finally:
        server.shutdown()
    one_sentence(r, f"MCP server web: {url} is not an MCP server", "legacy SSE: HTTP 404")


def test_a_stdio_server_that_writes_garbage_fails_at_once(workspace: Path) -> None:
    _user_servers(
        '[mcp.servers.chatty]\ncommand = "/bin/sh"\n'
        'args = ["-c", "echo Starting server on stdio...; sleep 60"]\n'
    )
    r = lg("mcp", "tools", "chatty", "--workspace", str(workspace))
    # Not the 30 s `initialize` wait: the first line that is not JSON-RPC ends it.
    one_sentence(r, "MCP server chatty is not an MCP server", "'Starting server on stdio...'")


def test_a_server_command_that_does_not_exist(workspace: Path) -> None:
    _user_servers('[mcp.servers.gone]\ncommand = "/opt/nowhere/mcp-server"\n')
    r = lg("mcp", "tools", "gone", "--workspace", str(workspace))
    one_sentence(r, "mcp.servers.gone: /opt/nowhere/mcp-server not found")
