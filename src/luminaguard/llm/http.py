"""HTTP/1.1 for the model endpoints: a POST of JSON, its answer read as it
streams, on asyncio's own streams and ``ssl``.

Why not httpx: its async stack (anyio, httpcore, h11, a TLS context with
certifi's bundle made even for ``http://``) cost ~150 ms before a run's first
request, a third of the whole start. What a model endpoint needs is small:
one request shape, answers with a length, chunked or up to the close, TLS
verified against the system's store (``SSL_CERT_FILE``/``SSL_CERT_DIR``, else
certifi's bundle), an ``http://`` proxy from the usual environment variables
(``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``, ``NO_PROXY``; a tunnel for
``https``) and kept-alive connections between a run's turns.

Failures are ``OSError`` (``TimeoutError`` for a wait past the timeout) or
``NotHttp`` for an answer that is not HTTP; ``wire.events`` turns them into
our provider errors.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import contextlib
import functools
import os
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from luminaguard.errors import NotHttp

MAX_HEAD = 64 * 1024
"""Bytes of a status line and headers at most (the stream reader's line limit too)."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str

    @classmethod
    def of(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(parts.scheme, parts.hostname, port, path)

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(frozen=True)
class Proxy:
    host: str
    port: int
    auth: str | None
    """A ``Proxy-Authorization`` value, from the proxy URL's user and password."""


def proxy_for(target: Target) -> Proxy | None:
    """The proxy the environment names for ``target``, or None."""
    if not any(k.lower().endswith("_proxy") for k in os.environ):
        return None  # the common case, without urllib.request's import
    import urllib.request

    proxies = urllib.request.getproxies_environment()
    if urllib.request.proxy_bypass(target.host):  # NO_PROXY (the environment's, on POSIX)
        return None
    url = proxies.get(target.scheme) or proxies.get("all")
    if not url:
        return None
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"the proxy {url} is not an http:// proxy (the only kind supported)")
    auth = None
    if parts.username:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        auth = "Basic " + base64.b64encode(pair.encode()).decode()
    return Proxy(parts.hostname, parts.port or 80, auth)


@functools.cache
def _tls(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context()  # reads SSL_CERT_FILE / SSL_CERT_DIR
    if not cert_file and not cert_dir and not context.cert_store_stats()["x509_ca"]:
        with contextlib.suppress(ImportError):
            import certifi

            context.load_verify_locations(certifi.where())
    context.set_alpn_protocols(["http/1.1"])
    return context


def tls_context() -> ssl.SSLContext:
    """Certificates verified, host names checked; made once per process (and
    per certificate settings), and only when an ``https://`` URL is used."""
    return _tls(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@dataclass
class Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


async def _open(target: Target, proxy: Proxy | None, timeout_s: float) -> Connection:
    host, port = (proxy.host, proxy.port) if proxy else (target.host, target.port)
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, limit=MAX_HEAD), timeout_s
    )
    conn = Connection(reader, writer)
    try:
        if target.scheme == "https":
            if proxy is not None:
                tunnel = f"{target.host}:{target.port}"
                lines = [f"CONNECT {tunnel} HTTP/1.1", f"Host: {tunnel}"]
                if proxy.auth:
                    lines.append(f"Proxy-Authorization: {proxy.auth}")
                writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
                status, _ = await _head(reader, timeout_s)
                if status != 200:
                    raise ConnectionRefusedError(
                        f"the proxy {proxy.host}:{proxy.port} answered {status} to a tunnel"
                    )
            await asyncio.wait_for(
                writer.start_tls(tls_context(), server_hostname=target.host), timeout_s
            )
    except BaseException:
        conn.close()
        raise
    return conn


async def _head(reader: asyncio.StreamReader, timeout_s: float) -> tuple[int, dict[str, str]]:
    """A status line and its headers (names lower-cased); 1xx answers skipped."""
    while True:
        line = await _line(reader, timeout_s)
        if not line:
            raise ConnectionResetError("the server closed the connection before answering")
        parts = line.decode("latin-1").split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise NotHttp(f"not an HTTP answer: {line[:80]!r}")
        status, size = int(parts[1]), len(line)
        headers: dict[str, str] = {}
        while True:
            line = await _line(reader, timeout_s)
            size += len(line)
            if size > MAX_HEAD:
                raise NotHttp("the answer's headers are too long")
            if line in (b"\r\n", b"\n"):
                break
            if not line:
                raise ConnectionResetError("the server closed the connection mid-answer")
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep:
                raise NotHttp(f"a malformed header line: {line[:80]!r}")
            key = name.strip().lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        if status >= 200 or status == 101:
            if parts[0] == "HTTP/1.0" and "keep-alive" not in headers.get("connection", ""):
                headers.setdefault("connection", "close")
            return status, headers


async def _line(reader: asyncio.StreamReader, timeout_s: float) -> bytes:
    try:
        return await asyncio.wait_for(reader.readline(), timeout_s)
    except ValueError:  # longer than the reader's limit
        raise NotHttp("a line of the answer is too long") from None


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    conn: Connection
    timeout_s: float
    done: bool = False
    """The whole body was read: the connection can carry another request."""

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives (chunked, of a length, or up to the close)."""
        reader, t = self.conn.reader, self.timeout_s
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            while True:
                size_line = await _line(reader, t)
                try:
                    size = int(size_line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise NotHttp(f"a malformed chunk size: {size_line[:40]!r}") from None
                if size == 0:
                    while (await _line(reader, t)) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    self.done = True
                    return
                data = await asyncio.wait_for(reader.readexactly(size + 2), t)
                yield data[:size]
        elif "content-length" in self.headers:
            try:
                left = int(self.headers["content-length"])
            except ValueError:
                raise NotHttp("a malformed Content-Length") from None
            while left > 0:
                data = await asyncio.wait_for(reader.read(min(left, 65536)), t)
                if not data:
                    raise asyncio.IncompleteReadError(b"", left)
                left -= len(data)
                yield data
            self.done = True
        else:
            while data := await asyncio.wait_for(reader.read(65536), t):
                yield data  # up to the close: this connection is not reused

    async def read(self, limit: int = 1 << 20) -> bytes:
        body = bytearray()
        async for data in self.chunks():
            body += data[: max(0, limit - len(body))]
        return bytes(body)

    async def lines(self) -> AsyncIterator[str]:
        """The body decoded as UTF-8, line by line (``\\n``, ``\\r\\n`` or ``\\r``)."""
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        pending = ""
        async for data in self.chunks():
            pending += decoder.decode(data)
            while True:
                cut = min(
                    (i for i in (pending.find("\n"), pending.find("\r")) if i >= 0), default=-1
                )
                if cut < 0 or (pending[cut] == "\r" and cut + 1 == len(pending)):
                    break  # a lone \r at the end may be half of \r\n
                end = cut + 2 if pending.startswith("\r\n", cut) else cut + 1
                yield pending[:cut]
                pending = pending[end:]
        pending += decoder.decode(b"", final=True)
        if pending:  # the last line, without an end (or ended by the held-back \r)
            yield pending.removesuffix("\r")

    @property
    def reusable(self) -> bool:
        return self.done and "close" not in self.headers.get("connection", "").lower()


def _request(target: Target, proxy: Proxy | None, body: bytes, headers: dict[str, str]) -> bytes:
    """The POST's bytes; ValueError for a header that would break the request."""
    if any("\r" in v or "\n" in v for v in (*headers, *headers.values())):
        raise ValueError("a request header holds a line break")
    absolute = proxy is not None and target.scheme == "http"  # plain HTTP through a proxy
    path = f"http://{target.authority}{target.path}" if absolute else target.path
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {target.authority}",
        "Accept: */*",
        "User-Agent: luminaguard",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    if absolute and proxy is not None and proxy.auth:
        lines.append(f"Proxy-Authorization: {proxy.auth}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Client:
    """Kept-alive connections for one event loop (a connection's streams
    belong to the loop that opened it), and the one request we make."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.idle: dict[tuple[Target, Proxy | None], list[Connection]] = {}
        """By where they lead (scheme, host, port) and the proxy they go through."""

    @contextlib.asynccontextmanager
    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> AsyncIterator[Response]:
        target = Target.of(url)
        proxy = proxy_for(target)
        request = _request(target, proxy, body, headers)  # refused before any connection
        key = (Target(target.scheme, target.host, target.port, ""), proxy)
        for attempt in range(2):
            reused = bool(self.idle.get(key))
            conn = self.idle[key].pop() if reused else await _open(target, proxy, self.timeout_s)
            try:
                conn.writer.write(request)
                await asyncio.wait_for(conn.writer.drain(), self.timeout_s)
                status, response_headers = await _head(conn.reader, self.timeout_s)
                break
            except (ConnectionError, asyncio.IncompleteReadError):
                conn.close()
                if not reused or attempt:
                    raise  # a fresh connection failed: that is the answer
                # An idle connection the server had closed: once more, on a new one.
            except BaseException:
                conn.close()
                raise
        response = Response(status, response_headers, conn, self.timeout_s)
        try:
            yield response
        finally:
            if response.reusable:
                self.idle.setdefault(key, []).append(conn)
            else:
                conn.close()

    def close(self) -> None:
        for conns in self.idle.values():
            for conn in conns:
                conn.close()
        self.idle.clear()
