"""The local service's Unix socket as its clients and its server use it: the
socket's name, the peer check, and the client requests (protocol:
``service/pools.py``).

Light on purpose (the standard library and ``errors``) and below the other
parts: the sandbox backends, the micro-VM's relay and the CLI's quick path
(``quick.py``) use it, and the service itself is built on top of them.
"""

from __future__ import annotations

import json
import socket
import struct
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from luminaguard.errors import LuminaGuardError

if TYPE_CHECKING:
    from luminaguard.config import SandboxSettings
    from luminaguard.protocols import ExecResult

SOCKET_NAME = "service.sock"


def peer_uid(sock: socket.socket) -> int:
    _pid, uid, _gid = struct.unpack(
        "3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    )
    return int(uid)


def exec_via_service(
    data_dir: Path,
    workspace: Path,
    argv: list[str],
    *,
    timeout_s: float | None,
    backend: str = "bwrap",
    stdin: str | None = None,
    settings: SandboxSettings | None = None,
) -> dict[str, Any] | None:
    """Run ``argv`` (workspace read-only, no network) in the running service's
    warm pool of ``backend``, under ``settings`` (default: the workspace's);
    None when no service listens (the caller runs it itself)."""
    request: dict[str, Any] = {
        "op": "exec",
        "workspace": str(workspace),
        "backend": backend,
        "argv": argv,
        "stdin": stdin,
        "timeout_s": timeout_s,
    }
    if settings is not None:
        request["settings"] = settings.model_dump(mode="json")
    return ask_service(data_dir, request)


async def run_in_service(
    data_dir: Path,
    workspace: Path,
    argv: list[str],
    *,
    backend: str,
    settings: SandboxSettings,
    stdin: str | None,
    timeout_s: float | None,
) -> ExecResult | None:
    """``exec_via_service`` from a sandbox's event loop, its answer as the
    sandbox's own result; None when no service listens."""
    import asyncio

    from luminaguard.protocols import ExecResult

    answer = await asyncio.to_thread(
        exec_via_service,
        data_dir,
        workspace,
        argv,
        timeout_s=timeout_s,
        backend=backend,
        stdin=stdin,
        settings=settings,
    )
    if answer is None:
        return None
    return ExecResult(
        exit_code=int(answer["exit_code"]),
        stdout=str(answer["stdout"]),
        stderr=str(answer["stderr"]),
        duration_s=float(answer["duration_s"]),
        timed_out=bool(answer["timed_out"]),
        truncated=bool(answer["truncated"]),
    )


def pool_stats_via_service(data_dir: Path) -> list[dict[str, Any]] | None:
    """The running service's pools; None when no service listens."""
    answer = ask_service(data_dir, {"op": "stats"})
    return None if answer is None else list(answer["pools"])


def ask_service(data_dir: Path, request: dict[str, Any]) -> dict[str, Any] | None:
    """One request to the service's socket; None when no service listens."""
    path = data_dir / SOCKET_NAME
    if not path.exists():
        return None
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            client.connect(str(path))
        except OSError:
            return None  # a socket left by a service that is gone
        client.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = client.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        client.close()
    try:
        answer = json.loads(data)
    except ValueError:
        raise LuminaGuardError("the local service answered something that is not JSON") from None
    if "error" in answer:
        raise LuminaGuardError(f"the local service: {answer['error']}")
    return dict(answer)


def shown(answer: dict[str, Any]) -> int:
    """A command's answer from the service, written out as the CLI writes one; its exit code."""
    sys.stdout.write(str(answer["stdout"]))
    sys.stderr.write(str(answer["stderr"]))
    if answer["timed_out"]:
        print(f"luminaguard: command timed out after {answer['duration_s']:.1f} s", file=sys.stderr)
    return int(answer["exit_code"])
