"""Network modes of a sandbox and the host-side egress proxy.

Modes:

- ``none`` (default): an empty network namespace; only the sandbox's own loopback.
- ``allow:HOST[,HOST…]``: still an isolated namespace, but a proxy on the host
  is reachable through a Unix socket bridged in; HTTP CONNECT and plain HTTP
  requests to listed hosts go through, everything else is refused with 403.
  Every request is recorded. ``*.example.com`` matches subdomains.
- ``test[:HOST,…]``: like ``allow`` but nothing is refused; each request that
  ``allow`` would have refused is recorded as such.
- ``host``: no network isolation at all. Explicit and loud.

The proxy only sees traffic that goes through it: a program that ignores
HTTP(S)_PROXY cannot reach anything in ``allow`` mode (there is no route), and
its attempt is not observed either.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from luminaguard.errors import NetworkViolation, UsageError

HEAD_LIMIT = 65536
CONNECT_TIMEOUT_S = 10.0


def check_network(records: list[dict[str, object]]) -> None:
    """Raise ``NetworkViolation`` if any of a command's requests was refused."""
    blocked = [r for r in records if not r["allowed"]]
    if blocked:
        raise NetworkViolation(blocked)


@dataclass(frozen=True)
class NetworkMode:
    kind: Literal["none", "allow", "test", "host", "record"]
    hosts: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> NetworkMode:
        kind, _, rest = text.strip().partition(":")
        hosts = tuple(h.strip().lower() for h in rest.split(",") if h.strip())
        if kind in ("none", "host") and not rest:
            return cls(kind)  # type: ignore[arg-type]
        if kind == "allow" and hosts:
            return cls("allow", hosts)
        if kind == "test":
            return cls("test", hosts)
        raise UsageError(
            f"unknown network mode {text!r}; use none, allow:HOST[,HOST...], test[:HOST,...] or host"
        )

    @property
    def proxied(self) -> bool:
        return self.kind in ("allow", "test", "record")

    def permits(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        for pattern in self.hosts:
            if pattern.startswith("*."):
                if host.endswith(pattern[1:]):
                    return True
            elif host == pattern:
                return True
        return False

    def __str__(self) -> str:
        return self.kind + (":" + ",".join(self.hosts) if self.hosts else "")


NONE = NetworkMode("none")
# Used by previews: every request is refused and recorded.
RECORD = NetworkMode("record")


@dataclass
class EgressProxy:
    """An HTTP proxy on a Unix socket that filters by host and records every request."""

    mode: NetworkMode
    socket_dir: Path
    attempts: list[dict[str, object]] = field(default_factory=list)
    notify: Callable[[dict[str, object]], None] | None = None
    """Told of each request as it is decided (a long-lived server's log)."""
    _server: asyncio.AbstractServer | None = None

    @property
    def socket_path(self) -> Path:
        return self.socket_dir / "proxy.sock"

    async def __aenter__(self) -> EgressProxy:
        self._server = await asyncio.start_unix_server(self._handle, path=str(self.socket_path))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    def blocked(self) -> list[dict[str, object]]:
        return [a for a in self.attempts if not a["allowed"]]

    def _decide(self, host: str, port: int, method: str) -> bool:
        would_allow = self.mode.permits(host)
        allowed = would_allow if self.mode.kind == "allow" else self.mode.kind == "test"
        record: dict[str, object] = {
            "host": host,
            "port": port,
            "method": method,
            "allowed": allowed,
        }
        if self.mode.kind == "test" and not would_allow:
            record["would_block"] = True
        self.attempts.append(record)
        if self.notify is not None:
            self.notify(record)
        return allowed

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        except (
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            TimeoutError,
            ConnectionError,
        ):
            writer.close()
            return
        try:
            request_line, _, rest = head.partition(b"\r\n")
            method, target, version = request_line.decode("latin-1").split(" ", 2)
            if method.upper() == "CONNECT":
                host, port = _split_hostport(target, 443)
                await self._tunnel(host, port, reader, writer)
            else:
                await self._forward(method, target, version, rest, reader, writer)
        except (ValueError, UnicodeDecodeError):
            await _refuse(writer, 400, "Bad Request", "malformed proxy request")
        except ConnectionError:
            writer.close()

    async def _open(
        self, host: str, port: int, method: str, writer: asyncio.StreamWriter
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """Decide, then connect upstream; on refusal or failure answer the client and return None."""
        if not self._decide(host, port, method):
            await _refuse(
                writer,
                403,
                "Forbidden",
                f"LuminaGuard: {host} is not in the sandbox's network allow-list",
            )
            return None
        try:
            return await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            await _refuse(writer, 502, "Bad Gateway", f"cannot reach {host}:{port}: {exc}")
            return None

    async def _tunnel(
        self, host: str, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        upstream = await self._open(host, port, "CONNECT", writer)
        if upstream is None:
            return
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await _splice(reader, writer, *upstream)

    async def _forward(
        self,
        method: str,
        target: str,
        version: str,
        rest: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        if not target.lower().startswith("http://"):
            await _refuse(
                writer, 400, "Bad Request", "only absolute http:// URLs and CONNECT are proxied"
            )
            return
        authority, _, path = target[7:].partition("/")
        host, port = _split_hostport(authority, 80)
        upstream = await self._open(host, port, method.upper(), writer)
        if upstream is None:
            return
        up_reader, up_writer = upstream
        up_writer.write(f"{method} /{path} {version}\r\n".encode("latin-1") + rest)
        await up_writer.drain()
        await _splice(reader, writer, up_reader, up_writer)


def _split_hostport(text: str, default: int) -> tuple[str, int]:
    if text.startswith("["):
        host, _, port = text[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    if not host:
        host, port = text, ""
    with contextlib.suppress(ValueError):
        host = str(ipaddress.ip_address(host))
    value = int(port) if port else default
    if not 0 < value < 65536:
        raise ValueError(f"bad port {port}")
    return host.lower(), value


async def _refuse(writer: asyncio.StreamWriter, code: int, reason: str, body: str) -> None:
    data = body.encode() + b"\n"
    writer.write(
        f"HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
        + data
    )
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    writer.close()


async def _splice(
    a_reader: asyncio.StreamReader,
    a_writer: asyncio.StreamWriter,
    b_reader: asyncio.StreamReader,
    b_writer: asyncio.StreamWriter,
) -> None:
    async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except ConnectionError:
            pass
        finally:
            with contextlib.suppress(Exception):
                dst.write_eof()

    await asyncio.gather(pipe(a_reader, b_writer), pipe(b_reader, a_writer))
    for w in (a_writer, b_writer):
        w.close()
