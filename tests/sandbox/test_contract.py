"""The contract every sandbox backend passes, written against the ``Sandbox``
protocol alone: set-up and observation go through the protocol's own file
operations, commands through a small vocabulary (``Ops``) that each backend
spells in its own way.

A new backend (gVisor, a micro-VM) joins by adding its ``Kit`` to ``KITS``;
nothing else here should need to change.
"""

from __future__ import annotations

import asyncio
import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

from luminaguard.config import SandboxSettings
from luminaguard.errors import CommitConflict, SandboxError, ToolError, WorkspacePathError
from luminaguard.protocols import ProcessSpec, Sandbox
from luminaguard.sandbox.bwrap import BwrapSandbox
from luminaguard.sandbox.memory import MemorySandbox
from tests.conftest import SANDBOX_BACKENDS, require_backend


class Ops(Protocol):
    def command(self, *steps: list[str]) -> list[str]: ...
    def echo(self, text: str) -> list[str]: ...
    def cat(self) -> list[str]: ...
    def write(self, path: str, text: str) -> list[str]: ...
    def append(self, path: str, text: str) -> list[str]: ...
    def rm(self, path: str) -> list[str]: ...
    def sleep(self, seconds: float) -> list[str]: ...
    def exit(self, code: int) -> list[str]: ...


class ShellOps:
    """Steps as POSIX shell, for backends that run real programs."""

    def command(self, *steps: list[str]) -> list[str]:
        return ["/bin/sh", "-c", "; ".join(s[0] for s in steps)]

    def echo(self, text: str) -> list[str]:
        return [f"echo {shlex.quote(text)}"]

    def cat(self) -> list[str]:
        return ["cat"]

    def write(self, path: str, text: str) -> list[str]:
        return [f"printf %s {shlex.quote(text)} > {shlex.quote(path)}"]

    def append(self, path: str, text: str) -> list[str]:
        return [f"printf %s {shlex.quote(text)} >> {shlex.quote(path)}"]

    def rm(self, path: str) -> list[str]:
        return [f"rm {shlex.quote(path)}"]

    def sleep(self, seconds: float) -> list[str]:
        return [f"sleep {seconds}"]

    def exit(self, code: int) -> list[str]:
        return [f"exit {code}"]


class MemoryOps:
    """Steps in the in-memory backend's command language."""

    def command(self, *steps: list[str]) -> list[str]:
        out: list[str] = []
        for s in steps:
            out += [*s, ";"]
        return out

    def echo(self, text: str) -> list[str]:
        return ["echo", text]

    def cat(self) -> list[str]:
        return ["cat"]

    def write(self, path: str, text: str) -> list[str]:
        return ["write", path, text]

    def append(self, path: str, text: str) -> list[str]:
        return ["append", path, text]

    def rm(self, path: str) -> list[str]:
        return ["rm", path]

    def sleep(self, seconds: float) -> list[str]:
        return ["sleep", str(seconds)]

    def exit(self, code: int) -> list[str]:
        return ["exit", str(code)]


@dataclass
class Kit:
    open: Callable[[Path], Sandbox]
    ops: Ops
    name: str = ""


SETTINGS = SandboxSettings(timeout_s=30, pool_size=0)


def _gvisor(ws: Path) -> Sandbox:
    from luminaguard.sandbox.gvisor import GvisorSandbox

    return GvisorSandbox(ws, SETTINGS)


def _microvm(ws: Path) -> Sandbox:
    from luminaguard.vm.backend import MicrovmSandbox

    return MicrovmSandbox(ws, SETTINGS)


KITS = {
    "bwrap": Kit(lambda ws: BwrapSandbox(ws, SETTINGS), ShellOps()),
    "gvisor": Kit(_gvisor, ShellOps()),
    "microvm": Kit(_microvm, ShellOps()),
    "memory": Kit(lambda ws: MemorySandbox(ws, SETTINGS), MemoryOps()),
}


@pytest.fixture(params=sorted(KITS))
def kit(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Kit:
    if request.param in SANDBOX_BACKENDS:
        require_backend(request.param, monkeypatch)
    kit = KITS[request.param]
    kit.name = request.param
    return kit


@pytest.fixture
def sandbox(kit: Kit, workspace: Path) -> Sandbox:
    sb = kit.open(workspace)
    sb.write_file("a.txt", b"hello\n")
    sb.write_file("b.txt", b"keep\n")
    return sb


def test_exec_passes_output_and_the_exit_code(kit: Kit, sandbox: Sandbox) -> None:
    o = kit.ops
    r = asyncio.run(sandbox.exec(o.command(o.echo("hi there"), o.exit(3))))
    assert (r.exit_code, r.stdout, r.timed_out) == (3, "hi there\n", False)


def test_exec_feeds_stdin(kit: Kit, sandbox: Sandbox) -> None:
    r = asyncio.run(sandbox.exec(kit.ops.command(kit.ops.cat()), stdin="piped in"))
    assert r.stdout == "piped in"


def test_exec_changes_the_workspace_and_read_only_exec_cannot(kit: Kit, sandbox: Sandbox) -> None:
    o = kit.ops
    asyncio.run(sandbox.exec(o.command(o.write("new.txt", "made"))))
    assert sandbox.read_file("new.txt") == b"made"
    r = asyncio.run(sandbox.exec(o.command(o.write("other.txt", "x")), read_only=True))
    assert r.exit_code != 0
    with pytest.raises(ToolError):
        sandbox.read_file("other.txt")


def test_a_command_past_its_time_is_stopped(kit: Kit, sandbox: Sandbox) -> None:
    r = asyncio.run(sandbox.exec(kit.ops.command(kit.ops.sleep(10)), timeout_s=0.5))
    assert r.timed_out and r.exit_code == 124


def test_a_preview_reports_its_effects_and_changes_nothing(kit: Kit, sandbox: Sandbox) -> None:
    o = kit.ops
    p = asyncio.run(
        sandbox.preview(
            o.command(
                o.write("c.txt", "new"), o.append("a.txt", "more\n"), o.rm("b.txt"), o.echo("out")
            )
        )
    )
    try:
        assert p.effects.created == ["c.txt"]
        assert [m.path for m in p.effects.modified] == ["a.txt"]
        assert "+more" in p.effects.modified[0].diff
        assert p.effects.deleted == ["b.txt"]
        assert p.result.stdout == "out\n" and p.result.exit_code == 0
        assert sandbox.read_file("a.txt") == b"hello\n" and sandbox.read_file("b.txt") == b"keep\n"
        with pytest.raises(ToolError):
            sandbox.read_file("c.txt")
        assert p.to_dict()["created"] == ["c.txt"]
    finally:
        sandbox.discard(p.handle)


def test_a_commit_applies_exactly_the_preview_once(kit: Kit, sandbox: Sandbox) -> None:
    o = kit.ops
    p = asyncio.run(sandbox.preview(o.command(o.write("c.txt", "new"), o.rm("b.txt"))))
    sandbox.commit(p.handle)
    assert sandbox.read_file("c.txt") == b"new"
    with pytest.raises(ToolError):
        sandbox.read_file("b.txt")
    with pytest.raises(SandboxError):
        sandbox.commit(p.handle)


def test_a_discarded_preview_cannot_be_committed(kit: Kit, sandbox: Sandbox) -> None:
    p = asyncio.run(sandbox.preview(kit.ops.command(kit.ops.write("c.txt", "new"))))
    sandbox.discard(p.handle)
    sandbox.discard(p.handle)  # a no-op the second time
    with pytest.raises(SandboxError):
        sandbox.commit(p.handle)
    with pytest.raises(ToolError):
        sandbox.read_file("c.txt")


def test_a_commit_over_a_changed_workspace_applies_nothing(kit: Kit, sandbox: Sandbox) -> None:
    o = kit.ops
    p = asyncio.run(sandbox.preview(o.command(o.append("a.txt", "more\n"), o.write("c.txt", "x"))))
    sandbox.write_file("a.txt", b"changed meanwhile\n")
    with pytest.raises(CommitConflict, match=r"a\.txt"):
        sandbox.commit(p.handle)
    with pytest.raises(ToolError):
        sandbox.read_file("c.txt")
    assert sandbox.read_file("a.txt") == b"changed meanwhile\n"
    sandbox.discard(p.handle)


def test_a_command_without_network_records_no_request(kit: Kit, sandbox: Sandbox) -> None:
    assert sandbox.network == "none"
    asyncio.run(sandbox.exec(kit.ops.command(kit.ops.echo("x"))))
    assert sandbox.network_records() == []


def test_file_operations_stay_in_the_workspace(sandbox: Sandbox) -> None:
    for path in ("../escape.txt", "/etc/passwd"):
        with pytest.raises(WorkspacePathError):
            sandbox.write_file(path, b"x")
    with pytest.raises(ToolError):
        sandbox.read_file("missing.txt")
    sandbox.write_file("/workspace/sub/f.txt", b"abc")
    assert sandbox.read_file("sub/f.txt") == b"abc"
    assert ("a.txt", "file", 6) in sandbox.list_dir(".")
    assert ("sub", "dir", 0) in sandbox.list_dir(".")
    sandbox.delete_file("a.txt")
    with pytest.raises(ToolError):
        sandbox.read_file("a.txt")


def test_a_long_lived_process_starts_through_the_backend(kit: Kit, sandbox: Sandbox) -> None:
    """Every backend runs one (the micro-VM: programs in its guest image only)."""

    async def scenario() -> str:
        async with sandbox.process(ProcessSpec(["/bin/cat"])) as launch:
            proc = await asyncio.create_subprocess_exec(
                *launch.command,
                env=launch.env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                start_new_session=True,
            )
            out, _ = await asyncio.wait_for(proc.communicate(b"ping\n"), 30)
            return out.decode()

    assert asyncio.run(scenario()) == "ping\n"
