"""Network modes of a sandbox and the host-side egress proxy.

Modes:

- ``none`` (default): an empty network namespace; only the sandbox's own loopback.
- ``allow:ENTRY[,ENTRY…]``: still an isolated namespace, but a proxy on the host
  is reachable through a Unix socket bridged in; HTTP CONNECT and plain HTTP
  requests to listed destinations go through, everything else is refused with
  403. Every request is recorded.
- ``test[:ENTRY,…]``: like ``allow`` but a request to an unlisted destination
  goes through too, recorded as one ``allow`` would have refused.
- ``host``: no network isolation at all. Explicit and loud.

An entry is ``HOST``, ``HOST:PORT`` or ``HOST:*``; HOST is a name, ``*.NAME``
(any name under NAME, whole labels only) or an IP address (``[v6]:PORT``).
Names and addresses are normalised (case, a trailing dot, IDNA, every IPv4
spelling ``inet_aton`` accepts, IPv4-mapped IPv6). Without a port an entry
admits 80 and 443 only.

The proxy resolves a name only once it is admitted (a refused name costs no
DNS query, which would carry data out), then checks every address it resolved
to and connects to the address it checked. Loopback, link-local, private and
other non-global addresses and the host's own addresses are refused, in
``test`` mode as well, unless the allow-list names them: by the address itself,
or by the exact name (never through a wildcard). A plain-HTTP request whose
``Host`` header names another destination than its target is refused.

The proxy only sees traffic that goes through it: a program that ignores
HTTP(S)_PROXY cannot reach anything in ``allow`` mode (there is no route), and
its attempt is not observed either.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import itertools
import socket
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
class Entry:
    """One allow-list entry: a host (name, ``*.suffix`` or address) and its ports."""

    host: str
    port: int | None = None
    """None: 80 and 443; 0: any port."""

    @classmethod
    def parse(cls, text: str) -> Entry:
        text = text.strip()
        host, port = _split(text)
        wildcard = host.startswith("*.")
        host = ("*." if wildcard else "") + normal_host(host[2:] if wildcard else host)
        if wildcard and is_address(host[2:]):
            raise ValueError(f"a wildcard cannot stand before an address: {text!r}")
        if not port:
            return cls(host)
        if port == "*":
            return cls(host, 0)
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"bad port in {text!r}")
        return cls(host, int(port))

    def admits_port(self, port: int) -> bool:
        return port in (80, 443) if self.port is None else self.port in (0, port)

    def admits(self, host: str, port: int) -> bool:
        if not self.admits_port(port):
            return False
        if self.host.startswith("*."):
            return host.endswith(self.host[1:])
        return host == self.host

    def names(self, host: str, port: int) -> bool:
        """Does this entry name ``host`` itself (so a non-global address behind it is meant)?"""
        return not self.host.startswith("*.") and self.admits(host, port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port or '*'}"


@dataclass(frozen=True)
class NetworkMode:
    kind: Literal["none", "allow", "test", "host", "record"]
    entries: tuple[Entry, ...] = ()

    @classmethod
    def parse(cls, text: str) -> NetworkMode:
        kind, _, rest = text.strip().partition(":")
        usage = (
            f"unknown network mode {text!r}; use none, allow:HOST[,HOST...], "
            "test[:HOST,...] or host (HOST may carry :PORT or :*)"
        )
        try:
            entries = tuple(Entry.parse(h) for h in rest.split(",") if h.strip())
        except ValueError as exc:
            raise UsageError(f"{usage}: {exc}") from None
        if kind in ("none", "host") and not rest:
            return cls(kind)  # type: ignore[arg-type]
        if kind == "allow" and entries:
            return cls("allow", entries)
        if kind == "test":
            return cls("test", entries)
        raise UsageError(usage)

    @property
    def hosts(self) -> tuple[str, ...]:
        return tuple(str(e) for e in self.entries)

    @property
    def proxied(self) -> bool:
        return self.kind in ("allow", "test", "record")

    def permits(self, host: str, port: int = 443) -> bool:
        host = normal_host(host)
        return any(e.admits(host, port) for e in self.entries)

    def names(self, host: str, port: int) -> bool:
        host = normal_host(host)
        return any(e.names(host, port) for e in self.entries)

    def __str__(self) -> str:
        return self.kind + (":" + ",".join(self.hosts) if self.entries else "")


def normal_host(text: str) -> str:
    """A host as the allow-list compares it: lower case, no trailing dot, IDNA,
    an address in its one canonical spelling (``0x7f.1`` and ``2130706433`` are
    ``127.0.0.1``; ``::ffff:10.0.0.1`` is ``10.0.0.1``). ValueError if it is none."""
    host = text.strip().strip("[]").rstrip(".").lower()
    if not host:
        raise ValueError("empty host")
    address = _address(host)
    if address is not None:
        return str(address)
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"bad host name {text!r}") from None
    if not all(c.isalnum() or c in "-_." for c in host) or ".." in host:
        raise ValueError(f"bad host name {text!r}")
    return host


def is_address(host: str) -> bool:
    return _address(host) is not None


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        # Every spelling of an IPv4 address a C resolver accepts: 127.1, 0x7f.0.0.1, 2130706433.
        if not host or not all(c in "0123456789abcdefx." for c in host):
            return None
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def internal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Loopback, link-local, private, reserved, or one of this host's own addresses."""
    return not address.is_global or address.is_multicast or address in own_addresses()


@functools.cache
def own_addresses() -> frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """This host's interface addresses (IPv4 from the kernel's routing view, IPv6
    from /proc), plus what its host name resolves to."""
    found: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            found.add(ipaddress.IPv6Address(bytes.fromhex(line.split()[0])))
    with contextlib.suppress(OSError):
        # /proc/net/fib_trie lists every local address as "/32 host LOCAL".
        lines = Path("/proc/net/fib_trie").read_text().splitlines()
        for prev, line in itertools.pairwise(lines):
            if line.strip() == "/32 host LOCAL":
                found.add(ipaddress.IPv4Address(prev.split()[-1]))
    with contextlib.suppress(OSError):
        for *_, sockaddr in socket.getaddrinfo(socket.gethostname(), None):
            with contextlib.suppress(ValueError):
                found.add(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]))
    return frozenset(found)


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
        # Read once, in a thread: it resolves the host name, which must not
        # block the loop in the middle of a request.
        await asyncio.to_thread(own_addresses)
        self._server = await asyncio.start_unix_server(self._handle, path=str(self.socket_path))
        # Open to whoever reaches it: its directory is the sandbox's alone (and
        # under root the sandbox is another host user, see ``hostuser``).
        self.socket_path.chmod(0o666)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    def blocked(self) -> list[dict[str, object]]:
        return [a for a in self.attempts if not a["allowed"]]

    def _record(self, record: dict[str, object]) -> None:
        self.attempts.append(record)
        if self.notify is not None:
            self.notify(record)

    async def _admit(
        self, host: str, port: int, method: str, refusal: str | None = None
    ) -> tuple[dict[str, object], str | None]:
        """Decide one request; on admission also the address to connect to (the
        one that was checked). The record is kept whatever the answer."""
        record: dict[str, object] = {"host": host, "port": port, "method": method}
        listed = self.mode.permits(host, port)
        if self.mode.kind == "test" and not listed:
            record["would_block"] = True
        if refusal is None and not (listed or self.mode.kind == "test"):
            refusal = f"{_hostport(host, port)} is not in the sandbox's network allow-list"
        address = None
        if refusal is None:
            try:
                address = await _resolve(host, port)
            except OSError as exc:
                record["error"] = f"cannot resolve {host}: {exc}"
            else:
                if internal(ipaddress.ip_address(address)) and not self.mode.names(host, port):
                    refusal = (
                        f"{host} is {address}, a loopback, private or host address; "
                        f"only an allow-list entry naming {_hostport(host, port)} itself admits it"
                    )
        record["allowed"] = refusal is None
        if refusal is not None:
            record["reason"] = refusal
            address = None
        self._record(record)
        return record, address

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
        self,
        host: str,
        port: int,
        method: str,
        writer: asyncio.StreamWriter,
        refusal: str | None = None,
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """Decide, then connect upstream; on refusal or failure answer the client and return None."""
        record, address = await self._admit(host, port, method, refusal)
        if not record["allowed"]:
            await _refuse(writer, 403, "Forbidden", f"LuminaGuard: {record['reason']}")
            return None
        if address is None:
            await _refuse(writer, 502, "Bad Gateway", str(record["error"]))
            return None
        try:
            return await asyncio.wait_for(asyncio.open_connection(address, port), CONNECT_TIMEOUT_S)
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
        upstream = await self._open(
            host, port, method.upper(), writer, _host_header_refusal(rest, host, port)
        )
        if upstream is None:
            return
        up_reader, up_writer = upstream
        up_writer.write(f"{method} /{path} {version}\r\n".encode("latin-1") + rest)
        await up_writer.drain()
        await _splice(reader, writer, up_reader, up_writer)


def _split_hostport(text: str, default: int) -> tuple[str, int]:
    """A request's ``host[:port]``, normalised as the allow-list compares it (ValueError if bad)."""
    if "@" in text:
        raise ValueError("credentials in a proxy target")
    host, port = _split(text)
    if port and not port.isdigit():
        raise ValueError(f"bad port {port!r}")
    value = int(port) if port else default
    if not 0 < value < 65536:
        raise ValueError(f"bad port {port}")
    return normal_host(host), value


def _split(text: str) -> tuple[str, str]:
    """``host[:port]``, ``[v6][:port]`` or a bare IPv6 address: (host, port text)."""
    if text.startswith("["):
        host, _, port = text[1:].partition("]")
        if port and not port.startswith(":"):
            raise ValueError(f"bad host and port {text!r}")
        return host, port[1:]
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, port
    return text, ""


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _host_header_refusal(head: bytes, host: str, port: int) -> str | None:
    """Why a plain-HTTP request's Host header disagrees with its target, if it does
    (a server behind an admitted address may route by Host to one that is not)."""
    values = [
        line.split(b":", 1)[1].strip().decode("latin-1")
        for line in head.split(b"\r\n")
        if line[:5].lower() == b"host:"
    ]
    if not values:
        return None
    if len(values) > 1:
        return "the request carries more than one Host header"
    try:
        named = _split_hostport(values[0], 80)
    except ValueError:
        return f"the request's Host header {values[0]!r} is malformed"
    if named != (host, port):
        return (
            f"the request's Host header names {values[0]!r}, not its target {_hostport(host, port)}"
        )
    return None


async def _resolve(host: str, port: int) -> str:
    """The address to connect to (an address is itself). A name with any internal
    address answers with that one, so the caller's check sees it: a name that
    resolves to a public and a loopback address is as internal as the loopback."""
    if is_address(host):
        return host
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = [str(info[4][0]).split("%", 1)[0] for info in infos]
    if not addresses:
        raise OSError("no address")
    inner = [a for a in addresses if internal(ipaddress.ip_address(a))]
    return inner[0] if inner else addresses[0]


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
