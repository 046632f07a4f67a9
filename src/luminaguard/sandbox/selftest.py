"""The sandbox's start-up self-test: it must really refuse what it claims to.

Run once per process, inside the spawn path, before the first sandbox starts;
a pass is remembered across processes while nothing it depends on changes
(``Gate``).
It checks, with a real sandbox, that a write outside the workspace does not
land, that a host loopback port cannot be reached, that the seccomp filter is
in force, that no capability is held and, run as root, that host root's files
are not the sandbox user's (``hostuser``). Any failure means no sandbox starts
(no silent fail-open): not a tool call, not a pooled sandbox, not an MCP server.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from luminaguard.config import SandboxSettings
from luminaguard.errors import LuminaGuardError, SandboxUnavailable
from luminaguard.sandbox import native

if TYPE_CHECKING:
    from luminaguard.sandbox.spawn import Spawn

SCRIPT = """
echo escaped > {outside} 2>/dev/null
echo escaped > /usr/.lg-selftest 2>/dev/null
(exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && echo NET-OPEN
grep -E '^(Seccomp|CapEff|NoNewPrivs):' /proc/self/status
grep -q '^NoNewPrivs:' /proc/self/status || {python} -I -S -c \
    "import ctypes; print('NoNewPrivs:', ctypes.CDLL(None).prctl(39, 0, 0, 0, 0))"
stat -c usr-owner=%u /usr
echo "uid=$(id -u)"
echo ok > inside
"""
TIMEOUT_S = 30.0


def self_test(settings: SandboxSettings, spawner: type[Spawn] | None = None) -> str | None:
    """``None`` when a sandbox started by ``spawner`` (default: bubblewrap's)
    holds, else what is wrong, in one sentence."""
    from luminaguard.sandbox import hostuser
    from luminaguard.sandbox.profile import SANDBOX_PYTHON, Layout
    from luminaguard.sandbox.spawn import Spawn

    spawner = spawner or Spawn

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
            script = SCRIPT.format(outside=outside, port=port, python=SANDBOX_PYTHON)
            try:
                spawn = spawner(Layout(ws), settings, ["/bin/bash", "-c", script], gated=False)
            except (LuminaGuardError, OSError) as exc:
                return f"a sandbox could not be started ({exc})"
            try:
                proc = spawn.popen()
                spawn.release_data()
                try:
                    out, err = proc.communicate(timeout=TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate()
                    return f"the self-test sandbox did not finish within {TIMEOUT_S:g} s"
            except OSError as exc:
                return f"a sandbox could not be started ({exc})"
            finally:
                spawn.close(now=True)
            stdout = out.decode("utf-8", "replace")
            listener.setblocking(False)
            try:
                listener.accept()
                reached = True
            except BlockingIOError:
                reached = False
        finally:
            listener.close()
        words = stdout.split()
        uid = next((w[4:] for w in words if w.startswith("uid=")), "?")
        if hostuser.namespace() is not None and f"usr-owner={uid}" in words:
            return "host root's files are the sandbox user's own (it runs as host root)"
        if not (ws / "inside").exists():
            stderr = err.decode("utf-8", "replace").strip()[:200]
            return f"the workspace is not writable inside the sandbox (exit {proc.returncode}: {stderr})"
        if outside.exists() or Path("/usr/.lg-selftest").exists():
            return "a write outside the workspace landed on the host"
        if reached or "NET-OPEN" in stdout:
            return "a host loopback port was reachable from the sandbox"
        status = dict(line.split(":", 1) for line in stdout.splitlines() if ":" in line)
        if status.get("Seccomp", "").strip() != "2":
            return "the seccomp filter is not in force"
        if status.get("CapEff", "").strip() != "0000000000000000":
            return "the sandboxed process holds capabilities"
        if status.get("NoNewPrivs", "").strip() != "1":
            return "no_new_privs is not set"
    return None


class Gate:
    """Runs a self-test once per process (on first use, from any thread) and
    refuses every later start if it failed.

    A named gate remembers a pass (``PassCache``) for as long as nothing it
    depends on changes: the boot, the user, the sandbox code, the binaries
    that start sandboxes and the settings. A failure is never remembered."""

    def __init__(
        self,
        test: Callable[[SandboxSettings], str | None],
        *,
        name: str | None = None,
        binaries: Callable[[], list[str]] = list,
    ) -> None:
        self._test = test
        self._name = name
        self._binaries = binaries
        self._lock = threading.Lock()
        self.problem: str | None = None
        """None until the test has run; then "" when it passed, else what failed."""
        self.cached = False
        """Whether the pass was remembered from another process."""

    @property
    def passed(self) -> bool:
        return self.problem == ""

    def check(self, settings: SandboxSettings) -> None:
        """Raise ``SandboxUnavailable`` unless the self-test passed (running it if it has not)."""
        if self.problem is None:
            with self._lock:
                if self.problem is None:
                    self.problem = self._run(settings)
        if self.problem:
            raise SandboxUnavailable(
                f"the sandbox failed its self-test, so no tool runs: {self.problem}"
            )

    def _run(self, settings: SandboxSettings) -> str:
        remembered: tuple[PassCache, str] | None = None
        if self._name is not None:
            # Without a cache the test runs, as it always may.
            with contextlib.suppress(OSError, LuminaGuardError):
                remembered = PassCache.default(), self._key(settings)
        if remembered is not None and remembered[0].has(remembered[1]):
            self.cached = True
            return ""
        problem = self._test(settings) or ""
        if not problem and remembered is not None:
            remembered[0].add(remembered[1])
        return problem

    def _key(self, settings: SandboxSettings) -> str:
        parts = [
            str(self._name),
            Path("/proc/sys/kernel/random/boot_id").read_text().strip(),
            str(os.geteuid()),
            _code_hash(),
            # Whether sandboxes start by the native launcher or the shell chain.
            str(native.launcher()),
            settings.model_dump_json(),
        ]
        for binary in self._binaries():
            st = os.stat(binary)
            parts.append(f"{binary}:{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}")
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()


@functools.cache
def _code_hash() -> str:
    """The sandbox code's identity: any change to it (an upgrade, an edit) is a new key."""
    digest = hashlib.sha256()
    here = Path(__file__).parent
    for source in sorted([*here.glob("*.py"), *here.glob("*.c")]):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()


class PassCache:
    """Self-test passes by key, in the user's private data directory."""

    MAX_AGE_S = 24 * 3600

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def default(cls) -> PassCache:
        from luminaguard.paths import user_data_dir

        return cls(user_data_dir() / "selftest-passes.json")

    def _read(self) -> dict[str, float]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return (
            {k: v for k, v in data.items() if isinstance(v, (int, float))}
            if isinstance(data, dict)
            else {}
        )

    def has(self, key: str) -> bool:
        when = self._read().get(key)
        return when is not None and 0 <= time.time() - when < self.MAX_AGE_S

    def add(self, key: str) -> None:
        from luminaguard.store import private_dir

        now = time.time()
        passes = {k: v for k, v in self._read().items() if now - v < self.MAX_AGE_S}
        passes[key] = now
        private_dir(self.path.parent)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(passes, f)
        os.replace(tmp, self.path)


def _bwrap_binaries() -> list[str]:
    import shutil

    from luminaguard.sandbox.process import prlimit_path
    from luminaguard.sandbox.profile import find_bwrap

    found = [find_bwrap(), prlimit_path(), shutil.which("nsenter")]
    return [b for b in found if b]


GATE = Gate(self_test, name="bwrap", binaries=_bwrap_binaries)
"""The bubblewrap backend's gate: every ``spawn.Spawn`` passes through it."""
