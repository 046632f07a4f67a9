"""The client end of the service's Unix socket (protocol: ``pools.py``).

Light on purpose (the standard library and ``errors``): the CLI's quick path
(``luminaguard/quick.py``) asks the service before anything heavy is imported.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from luminaguard.errors import LuminaGuardError

SOCKET_NAME = "service.sock"


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
