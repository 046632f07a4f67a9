"""What a provider endpoint can answer besides a good stream, each as one of
our errors naming the endpoint: real HTTP on loopback."""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator

import pytest

from luminaguard.errors import BadRequest, ProviderError, RateLimited, ServerError
from luminaguard.llm.anthropic_provider import AnthropicProvider
from luminaguard.llm.openai_provider import OpenAIProvider
from luminaguard.messages import Message

ANSWERS: dict[str, tuple[int, str, bytes, dict[str, str]]] = {
    "/html/chat/completions": (200, "text/html", b"<html>a login page</html>", {}),
    "/limited/chat/completions": (
        429,
        "application/json",
        b'{"error": {"message": "slow down"}}',
        {"Retry-After": "7"},
    ),
    "/refused/chat/completions": (
        400,
        "application/json",
        b'{"error": {"message": "model nope does not exist"}}',
        {},
    ),
    "/broken/chat/completions": (
        200,
        "text/event-stream",
        b'data: {"error": {"message": "backend died"}}\n\n',
        {},
    ),
    "/v1/messages": (
        200,
        "text/event-stream",
        b'event: message_start\ndata: {"type": "message_start", "message": {"usage": {"input_tokens": 3}}}\n\n'
        b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}\n\n',
        {},
    ),
}


class Endpoint(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status, kind, body, headers = ANSWERS[self.path]
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def base() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def ask(provider: OpenAIProvider | AnthropicProvider) -> None:
    asyncio.run(provider.complete([Message("user", "hi")], []))


def openai(base: str, path: str) -> OpenAIProvider:
    return OpenAIProvider("m", base_url=f"{base}/{path}", api_key="k", timeout_s=10)


def test_a_page_that_is_not_an_event_stream_names_the_endpoint(base: str) -> None:
    with pytest.raises(
        ProviderError, match=r"/html/chat/completions answered text/html, not a stream"
    ):
        ask(openai(base, "html"))


def test_statuses_become_our_errors_with_the_servers_message(base: str) -> None:
    with pytest.raises(RateLimited, match="slow down") as limited:
        ask(openai(base, "limited"))
    assert limited.value.retry_after_s == 7.0
    with pytest.raises(BadRequest, match="model nope does not exist"):
        ask(openai(base, "refused"))


def test_an_error_in_the_middle_of_a_stream_is_a_server_error(base: str) -> None:
    with pytest.raises(ServerError, match="backend died"):
        ask(openai(base, "broken"))
    anthropic = AnthropicProvider("m", base_url=base, api_key="k", timeout_s=10)
    with pytest.raises(ServerError, match="overloaded"):
        ask(anthropic)
