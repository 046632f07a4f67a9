"""The network rules are exact: the egress proxy of `allow` and `test` never
reaches a loopback, private or host address the allow-list does not name,
matches normalised hosts and ports, and refuses a plain-HTTP request whose Host
header points elsewhere than its target. Each attack aims at a loopback server
this test owns, which counts the requests that reach it."""

from __future__ import annotations

import asyncio
import http.server
import ipaddress
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from luminaguard.config import SandboxSettings
from luminaguard.sandbox import network
from luminaguard.sandbox.bwrap import BwrapSandbox
from luminaguard.sandbox.network import EgressProxy, NetworkMode, own_addresses


class _Counting(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).hits.append(self.headers.get("Host", ""))
        body = b"secret from a loopback service\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def service() -> Iterator[tuple[int, list[str]]]:
    """A loopback HTTP service (an admin console, a metadata endpoint): its port and its hits."""
    hits: ClassVar[list[str]] = []
    handler = type("Handler", (_Counting,), {"hits": hits})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield int(httpd.server_address[1]), hits
    httpd.shutdown()
    httpd.server_close()


def ask(mode: str, request: bytes, tmp_path: Path) -> tuple[bytes, list[dict[str, object]]]:
    """Send one raw request to a proxy in ``mode``; its answer and its records."""

    async def scenario() -> tuple[bytes, list[dict[str, object]]]:
        async with EgressProxy(NetworkMode.parse(mode), tmp_path) as proxy:
            reader, writer = await asyncio.open_unix_connection(str(proxy.socket_path))
            writer.write(request)
            await writer.drain()
            reply = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            return reply, proxy.attempts

    return asyncio.run(scenario())


def status(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/") else 0


def get(target: str, host: str | None = None) -> bytes:
    headers = f"Host: {host}\r\n" if host is not None else ""
    return f"GET {target} HTTP/1.1\r\n{headers}Connection: close\r\n\r\n".encode()


@pytest.mark.parametrize("mode", ["test", "test:example.com", "allow:*.example.com:*"])
@pytest.mark.parametrize(
    "spelling", ["127.0.0.1", "localhost", "0x7f.1", "2130706433", "[::ffff:127.0.0.1]"]
)
def test_loopback_is_never_reached_unless_named(
    mode: str, spelling: str, service: tuple[int, list[str]], tmp_path: Path
) -> None:
    port, hits = service
    reply, records = ask(mode, get(f"http://{spelling}:{port}/"), tmp_path)
    assert status(reply) == 403, reply
    assert hits == [], f"{spelling} reached the loopback service through {mode}"
    assert records and records[0]["allowed"] is False
    tunnel = f"CONNECT {spelling}:{port} HTTP/1.1\r\n\r\n".encode()
    reply, _ = ask(mode, tunnel, tmp_path)
    assert status(reply) == 403 and hits == []


def test_the_hosts_own_addresses_are_internal(
    service: tuple[int, list[str]], tmp_path: Path
) -> None:
    port, hits = service
    for address in sorted(map(str, own_addresses())):
        if address.startswith(("fe80:",)):
            continue  # link-local needs a scope to be reached at all
        target = f"[{address}]" if ":" in address else address
        reply, records = ask("test", get(f"http://{target}:{port}/"), tmp_path)
        assert status(reply) == 403, (address, reply)
        assert "loopback, private or host address" in str(records[0]["reason"])
    assert hits == []


def test_a_public_address_of_the_host_itself_is_internal(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # This machine's own addresses are all private; a cloud host has a public one.
    public = ipaddress.IPv4Address("8.8.4.4")
    assert not network.internal(public)
    monkeypatch.setattr(network, "own_addresses", lambda: frozenset({public}))
    assert network.internal(public)
    reply, records = ask("test", get("http://8.8.4.4:9/"), tmp_path)
    assert status(reply) == 403 and "host address" in str(records[0]["reason"])


def test_an_address_named_with_its_port_is_reached_in_any_spelling(
    service: tuple[int, list[str]], tmp_path: Path
) -> None:
    port, hits = service
    reply, records = ask(
        f"allow:127.0.0.1:{port}", get(f"http://2130706433:{port}/", f"2130706433:{port}"), tmp_path
    )
    assert status(reply) == 200 and len(hits) == 1
    assert records == [{"host": "127.0.0.1", "port": port, "method": "GET", "allowed": True}]
    reply, _ = ask(f"test:localhost:{port}", get(f"http://LocalHost.:{port}/"), tmp_path)
    assert status(reply) == 200 and len(hits) == 2
    reply, records = ask(
        f"allow:127.0.0.1:{port}", get(f"http://[::ffff:7f00:1]:{port}/"), tmp_path
    )
    assert status(reply) == 200 and len(hits) == 3 and records[0]["host"] == "127.0.0.1"


def test_an_entry_without_a_port_admits_only_the_web_ports(
    service: tuple[int, list[str]], tmp_path: Path
) -> None:
    port, hits = service
    reply, records = ask("allow:127.0.0.1", get(f"http://127.0.0.1:{port}/"), tmp_path)
    assert status(reply) == 403 and hits == []
    assert f"127.0.0.1:{port} is not in the sandbox's network allow-list" in str(
        records[0]["reason"]
    )
    assert NetworkMode.parse("allow:pypi.org").permits("pypi.org", 443)
    assert not NetworkMode.parse("allow:pypi.org").permits("pypi.org", 22)
    assert NetworkMode.parse("allow:pypi.org:*").permits("pypi.org", 22)


def test_a_host_header_that_points_elsewhere_is_refused(
    service: tuple[int, list[str]], tmp_path: Path
) -> None:
    port, hits = service
    for host in ("intranet.example", f"127.0.0.1:{port + 1}", "a\r\nHost: b"):
        reply, records = ask(
            f"allow:127.0.0.1:{port}", get(f"http://127.0.0.1:{port}/", host), tmp_path
        )
        assert status(reply) == 403, (host, reply)
        assert "Host header" in str(records[0]["reason"])
    twice = f"GET http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nHost: x\r\n\r\n"
    reply, _ = ask(f"allow:127.0.0.1:{port}", twice.encode(), tmp_path)
    assert status(reply) == 403
    assert hits == []


def test_a_refused_name_is_not_even_resolved(tmp_path: Path) -> None:
    # A DNS query for a refused name would carry data out (secret.attacker.example).
    _, records = ask("allow:example.com", get("http://nothing.invalid/"), tmp_path)
    assert records[0]["allowed"] is False and "error" not in records[0]
    _, records = ask("test", get("http://nothing.invalid/"), tmp_path)
    assert records[0]["would_block"] is True and "cannot resolve" in str(records[0]["error"])


def test_a_sandboxed_curl_cannot_reach_a_loopback_service_through_test_mode(
    workspace: Path, service: tuple[int, list[str]]
) -> None:
    port, hits = service
    sandbox = BwrapSandbox(workspace, SandboxSettings(timeout_s=30, network="test", pool_size=0))
    result = asyncio.run(
        sandbox.exec(
            ["/bin/bash", "-c", f"curl -s -m 10 -w ' %{{http_code}}' http://127.0.0.1:{port}/"]
        )
    )
    assert result.stdout.endswith(" 403") and hits == []
    assert sandbox.network_records()[0]["allowed"] is False
