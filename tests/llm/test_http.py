"""The model endpoints' HTTP client (``llm/http.py``) against real sockets on
loopback: raw answers written byte by byte as servers send them, a proxy,
and TLS with a certificate made here."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from luminaguard.errors import NotHttp, ProviderError, ProviderUnavailable
from luminaguard.llm.http import Client
from luminaguard.llm.openai_provider import OpenAIProvider
from luminaguard.llm.scripted_server import ScriptedServer
from luminaguard.messages import Message

HISTORY = [Message(role="user", content="hi")]

Writer = Callable[[asyncio.StreamWriter], Awaitable[None]]


async def _serve(answers: list[Writer], seen: list[bytes], conns: list[int]) -> asyncio.Server:
    """A server that reads each request (head and body) and writes the next answer."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conns.append(1)
        while answers:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            seen.append(head + await reader.readexactly(length))
            await answers.pop(0)(writer)
            await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def _exchange(answers: list[Writer], requests: int = 1) -> tuple[list[str], list[bytes], int]:
    """Every line of each answer's body, the requests seen, and connections made."""
    seen: list[bytes] = []
    conns: list[int] = []

    async def go() -> list[str]:
        server = await _serve(answers, seen, conns)
        port = server.sockets[0].getsockname()[1]
        client, lines = Client(5), []
        for _ in range(requests):
            async with client.post(f"http://127.0.0.1:{port}/v1/x", b"{}", {}) as response:
                assert response.status == 200
                lines += [line async for line in response.lines()]
        client.close()
        server.close()
        return lines

    return asyncio.run(go()), seen, len(conns)


def _pieces(*parts: bytes) -> Writer:
    async def write(writer: asyncio.StreamWriter) -> None:
        for part in parts:
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.005)  # each piece its own read

    return write


def test_a_chunked_answer_split_anywhere_gives_its_lines() -> None:
    # A CRLF split between chunks, a lone CR ending a line, a UTF-8 character
    # split between chunks, and a last line without an end.
    body = [b"data: a\r", b"\ndata: \xc3", b"\xa9\rdata: c\n\nlast"]
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in body) + b"0\r\n\r\n"
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    lines, seen, _ = _exchange([_pieces(head, *(chunked[i : i + 7] for i in range(0, 99, 7)))])
    assert lines == ["data: a", "data: é", "data: c", "", "last"]
    assert seen[0].startswith(b"POST /v1/x HTTP/1.1\r\n")


def test_answers_of_a_length_keep_one_connection_and_one_up_to_the_close_does_not() -> None:
    sized = _pieces(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n", b"one\ntwo")
    lines, _, conns = _exchange([sized, sized], requests=2)
    assert lines == ["one", "two", "one", "two"] and conns == 1

    async def to_the_close(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\n\r\nthree")
        await writer.drain()
        writer.close()

    lines, _, conns = _exchange([to_the_close, to_the_close], requests=2)
    assert lines == ["three", "three"] and conns == 2


def test_a_reply_that_is_not_http_is_one_clear_error() -> None:
    async def garbage(writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n")

    async def go(port: int) -> None:
        p = OpenAIProvider("m", base_url=f"http://127.0.0.1:{port}/v1", api_key="k")
        await p.complete(HISTORY, [])

    async def main() -> None:
        server = await _serve([garbage], [], [])
        try:
            await go(server.sockets[0].getsockname()[1])
        finally:
            server.close()

    with pytest.raises(NotHttp, match="not HTTP"):
        asyncio.run(main())


def test_a_key_with_a_line_break_is_refused_not_sent() -> None:
    with ScriptedServer([{"content": "x"}]) as server:
        p = OpenAIProvider("m", base_url=server.base_url + "/v1", api_key="k\r\nX-Injected: 1")
        with pytest.raises(ProviderError, match="line break"):
            asyncio.run(p.complete(HISTORY, []))
        assert server.script.requests == []


def test_plain_http_goes_through_the_environment_s_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    with ScriptedServer([{"content": "via the proxy"}, {"content": "direct"}]) as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://user:pw@127.0.0.1:{proxy.server_port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        p = OpenAIProvider("m", base_url="http://model.invalid/v1", api_key="k")
        assert asyncio.run(p.complete(HISTORY, [])).content == "via the proxy"
        request = proxy.script.requests[0]
        assert request["path"] == "http://model.invalid/v1/chat/completions"
        assert request["headers"]["Proxy-Authorization"] == "Basic dXNlcjpwdw=="
        # NO_PROXY: straight to the server.
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        direct = OpenAIProvider("m", base_url=proxy.base_url + "/v1", api_key="k")
        assert asyncio.run(direct.complete(HISTORY, [])).content == "direct"
        assert proxy.script.requests[1]["path"] == "/v1/chat/completions"


def _certificate(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp / "cert.pem", tmp / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_https_verifies_the_server_s_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert_file, key_file = _certificate(tmp_path)
    with ScriptedServer([{"content": "over tls"}]) as server:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(cert_file, key_file)
        server.socket = tls.wrap_socket(server.socket, server_side=True)
        url = f"https://127.0.0.1:{server.server_port}/v1"
        for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        # Not in the trusted store: refused before anything is sent.
        with pytest.raises(ProviderUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            asyncio.run(OpenAIProvider("m", base_url=url, api_key="k").complete(HISTORY, []))
        assert server.script.requests == []
        # Trusted (SSL_CERT_FILE, as OpenSSL reads it): the request goes.
        monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
        answer: Any = asyncio.run(
            OpenAIProvider("m", base_url=url, api_key="k").complete(HISTORY, [])
        )
        assert answer.content == "over tls"


def test_https_through_a_proxy_is_a_tunnel_and_still_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert_file, key_file = _certificate(tmp_path)
    tunnels: list[bytes] = []

    async def tunnel(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        tunnels.append(head.split(b"\r\n")[0])
        host, port = head.split()[1].decode().rsplit(":", 1)
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    with ScriptedServer([{"content": "tunnelled"}]) as server:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(cert_file, key_file)
        server.socket = tls.wrap_socket(server.socket, server_side=True)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)

        async def main() -> str:
            proxy = await asyncio.start_server(tunnel, "127.0.0.1", 0)
            monkeypatch.setenv("HTTPS_PROXY", f"127.0.0.1:{proxy.sockets[0].getsockname()[1]}")
            url = f"https://127.0.0.1:{server.server_port}/v1"
            try:
                turn = await OpenAIProvider("m", base_url=url, api_key="k").complete(HISTORY, [])
            finally:
                proxy.close()
            return str(turn.content)

        assert asyncio.run(main()) == "tunnelled"
    assert tunnels == [f"CONNECT 127.0.0.1:{server.server_port} HTTP/1.1".encode()]
