"""Network modes against real HTTP servers on this machine's loopback only."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from luminaguard.config import SandboxSettings
from luminaguard.errors import NetworkViolation, UsageError
from luminaguard.protocols import ExecResult
from luminaguard.sandbox.bwrap import BwrapSandbox
from luminaguard.sandbox.network import EgressProxy, NetworkMode, check_network


@pytest.fixture
def server(host_web: int) -> int:
    return host_web


def fetch(
    workspace: Path, mode: str, url: str, *, tunnel: bool = False
) -> tuple[ExecResult, BwrapSandbox]:
    sandbox = BwrapSandbox(workspace, SandboxSettings(timeout_s=30, network=mode, pool_size=0))
    flags = "-p " if tunnel else ""
    result = asyncio.run(
        sandbox.exec(["/bin/bash", "-c", f"curl -s -m 10 {flags}-w ' %{{http_code}}' {url}"])
    )
    return result, sandbox


def test_allow_mode_reaches_a_listed_host_through_the_proxy(workspace: Path, server: int) -> None:
    r, sb = fetch(workspace, f"allow:127.0.0.1:{server}", f"http://127.0.0.1:{server}/")
    assert r.stdout == "hello from the host\n 200"
    assert sb.network_records() == [
        {"host": "127.0.0.1", "port": server, "method": "GET", "allowed": True}
    ]


def test_allow_mode_tunnels_connect_to_a_listed_host(workspace: Path, server: int) -> None:
    r, sb = fetch(
        workspace, f"allow:127.0.0.1:{server}", f"http://127.0.0.1:{server}/", tunnel=True
    )
    assert r.stdout.endswith(" 200")
    assert sb.network_records()[0]["method"] == "CONNECT"


def test_allow_mode_refuses_and_records_other_hosts(workspace: Path, server: int) -> None:
    r, sb = fetch(workspace, "allow:example.com", f"http://127.0.0.1:{server}/")
    assert r.stdout.endswith(" 403")
    assert "not in the sandbox's network allow-list" in r.stdout
    [record] = sb.network_records()
    assert record["allowed"] is False and (record["host"], record["port"]) == ("127.0.0.1", server)
    assert "not in the sandbox's network allow-list" in str(record["reason"])


def test_a_refused_host_raises_a_network_violation_on_request(workspace: Path, server: int) -> None:
    _, sb = fetch(workspace, "allow:example.com", f"http://127.0.0.1:{server}/")
    with pytest.raises(NetworkViolation, match=f"127.0.0.1:{server}"):
        check_network(sb.network_records())
    _, ok = fetch(workspace, f"allow:127.0.0.1:{server}", f"http://127.0.0.1:{server}/")
    check_network(ok.network_records())


def test_test_mode_allows_but_records_what_allow_would_block(workspace: Path, server: int) -> None:
    # The loopback address is named (test mode never reaches an internal address
    # it was not told of), on another port: allow would refuse the request.
    r, sb = fetch(workspace, f"test:example.com,127.0.0.1:{server}", f"http://127.0.0.1:{server}/")
    assert r.stdout.endswith(" 200") and "would_block" not in sb.network_records()[0]
    r, sb = fetch(workspace, "test:127.0.0.1:*", f"http://127.0.0.1:{server}/")
    assert r.stdout.endswith(" 200") and "would_block" not in sb.network_records()[0]


def test_none_mode_reaches_nothing(workspace: Path, server: int) -> None:
    r, sb = fetch(workspace, "none", f"http://127.0.0.1:{server}/")
    assert r.stdout.endswith(" 000")
    assert sb.network_records() == []


def test_host_patterns() -> None:
    mode = NetworkMode.parse("allow:pypi.org,*.pythonhosted.org")
    assert mode.permits("pypi.org") and mode.permits("files.pythonhosted.org")
    assert not mode.permits("evil-pypi.org") and not mode.permits("pythonhosted.org.evil.com")


@pytest.mark.parametrize("text", ["allow:", "everything", "none:x", "host:x"])
def test_bad_modes_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="unknown network mode"):
        NetworkMode.parse(text)


def test_the_proxy_answers_garbage_with_400(tmp_path: Path) -> None:
    async def scenario() -> bytes:
        async with EgressProxy(NetworkMode.parse("allow:x"), tmp_path) as proxy:
            reader, writer = await asyncio.open_unix_connection(str(proxy.socket_path))
            writer.write(b"NONSENSE\r\n\r\n")
            await writer.drain()
            reply = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            return reply

    assert asyncio.run(scenario()).startswith(b"HTTP/1.1 400")


def test_a_wildcard_in_the_allow_list_matches_whole_labels_only() -> None:
    mode = NetworkMode.parse("allow:*.example.org,pypi.org")
    assert mode.permits("a.example.org") and mode.permits("a.b.example.org")
    assert mode.permits("PyPI.org.")
    for host in ("evilexample.org", "example.org.evil.com", "notpypi.org", "pypi.org.evil"):
        assert not mode.permits(host), host
