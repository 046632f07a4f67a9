"""A model endpoint that hangs: every wait is bounded and shown (a "waiting"
line, each failed attempt with what comes next, then one error)."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_cli import lg


@pytest.fixture
def hanging() -> Iterator[str]:
    """An HTTP endpoint on loopback that reads requests and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            held.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/v1"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_a_hanging_endpoint_is_shown_waiting_retried_and_given_up_on(
    workspace: Path, hanging: str
) -> None:
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "luminaguard"
    config.mkdir(parents=True)
    (config / "luminaguard.toml").write_text(
        "[llm]\ntimeout_s = 3.5\n[router]\nretries = 1\nbackoff_s = 0.1\n"
    )
    env = {**os.environ, "OPENAI_BASE_URL": hanging, "OPENAI_API_KEY": "k"}
    r = lg(
        "run",
        "hi",
        "--workspace",
        str(workspace),
        "--model",
        "openai/m",
        "--approver",
        "none",
        env=env,
    )
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert "waiting for openai/m (attempt 1/2, 3 s so far)" in out
    assert "failed (attempt 1/2)" in out and "retrying in 0.1 s" in out
    assert "failed (attempt 2/2)" in out and "giving up on it" in out
