"""The sandbox's start-up self-test: it must really refuse what it claims to.

Run once per process before the first tool call. It checks, with a real
sandbox, that a write outside the workspace does not land, that a host
loopback port cannot be reached, that the seccomp filter is in force and that
no capability is held. Any failure means no tool runs (no silent fail-open).
"""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

from luminaguard.config import SandboxSettings
from luminaguard.errors import LuminaGuardError

SCRIPT = """
echo escaped > {outside} 2>/dev/null
echo escaped > /usr/.lg-selftest 2>/dev/null
(exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && echo NET-OPEN
grep -E '^(Seccomp|CapEff|NoNewPrivs):' /proc/self/status
echo ok > inside
"""


async def self_test(settings: SandboxSettings) -> str | None:
    """``None`` when the sandbox holds, else what is wrong, in one sentence."""
    from luminaguard.sandbox.bwrap import Layout, launch

    with tempfile.TemporaryDirectory(prefix="lg-selftest-") as tmp:
        root = Path(tmp)
        ws = root / "ws"
        ws.mkdir()
        outside = root / "outside"
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        try:
            port = listener.getsockname()[1]
            script = SCRIPT.format(outside=outside, port=port)
            test_settings = settings.model_copy(update={"timeout_s": 30.0, "pool_size": 0})
            try:
                result, _ = await launch(
                    Layout(ws), test_settings, ["/bin/bash", "-c", script], stdin=None, timeout_s=30
                )
            except (LuminaGuardError, OSError) as exc:
                return f"a sandbox could not be started ({exc})"
            listener.setblocking(False)
            try:
                listener.accept()
                reached = True
            except BlockingIOError:
                reached = False
        finally:
            listener.close()
        if not (ws / "inside").exists():
            return f"the workspace is not writable inside the sandbox (exit {result.exit_code}: {result.stderr.strip()[:200]})"
        if outside.exists() or Path("/usr/.lg-selftest").exists():
            return "a write outside the workspace landed on the host"
        if reached or "NET-OPEN" in result.stdout:
            return "a host loopback port was reachable from the sandbox"
        status = dict(line.split(":", 1) for line in result.stdout.splitlines() if ":" in line)
        if status.get("Seccomp", "").strip() != "2":
            return "the seccomp filter is not in force"
        if status.get("CapEff", "").strip() != "0000000000000000":
            return "the sandboxed process holds capabilities"
        if status.get("NoNewPrivs", "").strip() != "1":
            return "no_new_privs is not set"
    return None
