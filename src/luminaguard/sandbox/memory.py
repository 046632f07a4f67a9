"""The in-memory reference backend: the ``Sandbox`` protocol with nothing real
underneath, as httpx ships ``MockTransport``.

The workspace is a dict of paths to bytes; a command is answered by a
handler ``(argv, files, stdin) -> ExecResult`` that may change the files.
Previews run the handler on a copy and report the difference as ``Effects``;
commits apply it with the same all-or-nothing conflict check as a real
backend. It is what the contract suite (tests/sandbox/contract.py) is written
against first, and what a test uses when the sandbox is beside the point.

What it is not: isolation. Nothing runs inside anything; a long-lived
process (``process``) is started on the host as it is. So it is not in the
backend registry: a test registers it (``sandbox.register``) if it wants it
by name.

The default handler understands a few commands, joined by ``;`` arguments:
``echo TEXT``, ``cat`` (stdin to stdout), ``read PATH``, ``write PATH TEXT``,
``append PATH TEXT``, ``rm PATH``, ``sleep SECONDS`` and ``exit CODE``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

from luminaguard.config import SandboxSettings
from luminaguard.core.effects import Effects, Modified, unified_diff
from luminaguard.core.paths import relative
from luminaguard.errors import CommitConflict, SandboxError, ToolError
from luminaguard.protocols import (
    ExecResult,
    NetworkNotice,
    Preview,
    ProcessLaunch,
    ProcessSpec,
)

Files = dict[str, bytes]
Handler = Callable[[Sequence[str], Files, str | None], ExecResult]

MINIMAL_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"}


class MemorySandbox:
    """A ``Sandbox`` over a workspace held in memory."""

    def __init__(
        self,
        workspace: Path,
        settings: SandboxSettings,
        *,
        files: Files | None = None,
        handler: Handler | None = None,
        read_only: bool = False,
    ) -> None:
        self.workspace = workspace
        self.settings = settings
        self.network = "none"
        self.files: Files = dict(files or {})
        self.handler = handler or run_script
        self.read_only = read_only
        self.launched: list[ProcessSpec] = []
        """Every long-lived process started through this sandbox (for tests)."""
        self._previews: dict[str, tuple[Files, Files, Preview]] = {}
        self._ids = itertools.count(1)

    async def exec(
        self,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        timeout_s: float | None = None,
        read_only: bool = False,
        offline: bool = False,
    ) -> ExecResult:
        if not argv:
            raise SandboxError("empty command")
        files = dict(self.files)
        result = await self._run(argv, files, stdin, timeout_s)
        if not (read_only or self.read_only):
            self.files = files
        elif files != self.files:
            # A read-only workspace: the command's writes fail, as on a real backend.
            result = ExecResult(
                1, result.stdout, result.stderr + "Read-only file system\n", result.duration_s
            )
        return result

    async def _run(
        self, argv: Sequence[str], files: Files, stdin: str | None, timeout_s: float | None
    ) -> ExecResult:
        limit = timeout_s or self.settings.timeout_s
        started = time.monotonic()
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(self.handler, list(argv), files, stdin), limit
            )
        except TimeoutError:
            return ExecResult(124, "", "", time.monotonic() - started, timed_out=True)

    async def preview(
        self,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        timeout_s: float | None = None,
        live: bool = False,
    ) -> Preview:
        before = dict(self.files)
        after = dict(before)
        result = await self._run(argv, after, stdin, timeout_s)
        handle = f"memory-preview-{next(self._ids)}"
        preview = Preview(handle, list(argv), result, diff(before, after))
        self._previews[handle] = (before, after, preview)
        return preview

    def commit(self, handle: str) -> None:
        try:
            before, after, _ = self._previews[handle]
        except KeyError:
            raise SandboxError("this preview was already committed or discarded") from None
        touched = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
        stale = sorted(p for p in touched if self.files.get(p) != before.get(p))
        if stale:
            raise CommitConflict(stale)
        del self._previews[handle]
        for path in touched:
            if path in after:
                self.files[path] = after[path]
            else:
                self.files.pop(path, None)

    def discard(self, handle: str) -> None:
        self._previews.pop(handle, None)

    def network_records(self) -> list[dict[str, object]]:
        return []

    @contextlib.asynccontextmanager
    async def process(
        self, spec: ProcessSpec, *, on_network: NetworkNotice | None = None
    ) -> AsyncIterator[ProcessLaunch]:
        """Started on the host as it is: this backend isolates nothing."""
        self.launched.append(spec)
        yield ProcessLaunch(list(spec.argv), {**MINIMAL_ENV, **spec.env}, sandboxed=False)

    def _key(self, path: str) -> str:
        rel = str(relative(path))
        if rel == ".":
            raise ToolError(f"{path} is the workspace itself")
        return rel

    def read_file(self, path: str) -> bytes:
        try:
            return self.files[self._key(path)]
        except KeyError:
            raise ToolError(f"{path}: no such file") from None

    def write_file(self, path: str, data: bytes) -> None:
        self.files[self._key(path)] = data

    def delete_file(self, path: str) -> None:
        try:
            del self.files[self._key(path)]
        except KeyError:
            raise ToolError(f"{path}: no such file") from None

    def list_dir(self, path: str) -> list[tuple[str, str, int]]:
        rel = str(relative(path))
        prefix = "" if rel == "." else rel + "/"
        entries: dict[str, tuple[str, str, int]] = {}
        for name, data in self.files.items():
            if not name.startswith(prefix):
                continue
            first, _, rest = name[len(prefix) :].partition("/")
            entries[first] = (first, "dir", 0) if rest else (first, "file", len(data))
        if not entries and prefix:
            raise ToolError(f"{path}: not a directory")
        return sorted(entries.values())

    def close(self) -> None:
        self._previews.clear()


def diff(before: Files, after: Files) -> Effects:
    """What changed from ``before`` to ``after``, as a real backend reports it."""
    effects = Effects()
    for path in sorted(after.keys() - before.keys()):
        effects.created.append(path)
    for path in sorted(before.keys() - after.keys()):
        effects.deleted.append(path)
    for path in sorted(before.keys() & after.keys()):
        old, new = before[path], after[path]
        if old != new:
            text = unified_diff(
                old.decode("utf-8", "replace"), new.decode("utf-8", "replace"), path
            )
            effects.modified.append(Modified(path, text, False, len(old), len(new)))
    return effects


def run_script(argv: Sequence[str], files: Files, stdin: str | None) -> ExecResult:
    """The default handler: the small command language of the module docstring."""
    started = time.monotonic()
    out: list[str] = []
    commands: list[list[str]] = [[]]
    for word in argv:
        if word == ";":
            commands.append([])
        else:
            commands[-1].append(word)
    for cmd in filter(None, commands):
        name, args = cmd[0], cmd[1:]
        if name == "echo":
            out.append(" ".join(args) + "\n")
        elif name == "cat":
            out.append(stdin or "")
        elif name == "read":
            if args[0] not in files:
                return ExecResult(1, "".join(out), f"{args[0]}: No such file\n", _since(started))
            out.append(files[args[0]].decode("utf-8", "replace"))
        elif name == "write":
            files[args[0]] = args[1].encode()
        elif name == "append":
            files[args[0]] = files.get(args[0], b"") + args[1].encode()
        elif name == "rm":
            files.pop(args[0], None)
        elif name == "sleep":
            time.sleep(float(args[0]))
        elif name == "exit":
            return ExecResult(int(args[0]), "".join(out), "", _since(started))
        else:
            return ExecResult(127, "".join(out), f"{name}: command not found\n", _since(started))
    return ExecResult(0, "".join(out), "", _since(started))


def _since(started: float) -> float:
    return time.monotonic() - started
