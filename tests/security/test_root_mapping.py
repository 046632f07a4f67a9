"""Run as root, a sandbox is an unprivileged host user: root's files bound into
it are "nobody"'s, and only the workspace is shown as the sandbox user's own."""

from __future__ import annotations

import asyncio
import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from luminaguard.config import SandboxSettings
from luminaguard.protocols import ProcessSpec
from luminaguard.sandbox import backend_class, hostuser
from luminaguard.sandbox.bwrap import BwrapSandbox
from luminaguard.sandbox.profile import Layout
from luminaguard.sandbox.selftest import self_test

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="a property of running as root (these tests run as root in CI)"
)

SECRET = "root-only secret"
NOBODY = "65534"


@pytest.fixture
def secret_dir(tmp_path: Path) -> Path:
    """A directory of root's, world-readable, holding one root-only file (0600)."""
    d = tmp_path / "host"
    d.mkdir()
    d.chmod(0o755)
    (d / "secret").write_text(SECRET)
    (d / "secret").chmod(0o600)
    (d / "public").write_text("public")
    (d / "public").chmod(0o644)
    return d


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "notes.txt").write_text("mine\n")
    (ws / "notes.txt").chmod(0o600)
    return ws


def sandbox(ws: Path, host: Path, backend: str) -> BwrapSandbox:
    """A sandbox of ``backend`` (bwrap, or gvisor: a subclass) with ``host`` at /host."""
    cls = backend_class(backend)
    sb: BwrapSandbox = cls(ws, SandboxSettings(pool_size=0), ro_binds=[(str(host), "/host")])
    return sb


INSIDE_UID = {"bwrap": "1000", "gvisor": "0"}
"""The sandbox user: gVisor's is its own root, with no capabilities (host HOST_ID)."""


def test_a_root_only_host_file_bound_into_a_sandbox_is_not_readable(
    workspace: Path, secret_dir: Path, process_backend: str
) -> None:
    result = asyncio.run(
        sandbox(workspace, secret_dir, process_backend).exec(
            ["/bin/sh", "-c", "cat /host/public; cat /host/secret"]
        )
    )
    assert "public" in result.stdout  # world-readable files still are
    assert SECRET not in result.stdout
    assert "Permission denied" in result.stderr


def test_root_owned_system_files_are_nobodys_not_the_sandbox_users(
    workspace: Path, secret_dir: Path, process_backend: str
) -> None:
    result = asyncio.run(
        sandbox(workspace, secret_dir, process_backend).exec(
            ["/bin/sh", "-c", "stat -c %u /usr /usr/bin/env /host/secret; ls /etc/ssl/private"]
        )
    )
    assert result.stdout.split() == [NOBODY] * 3
    if Path("/etc/ssl/private").exists() and not os.stat("/etc/ssl/private").st_mode & 0o004:
        assert "Permission denied" in result.stderr


def test_the_workspace_stays_the_persons_to_work_on(
    workspace: Path, secret_dir: Path, process_backend: str
) -> None:
    sb = sandbox(workspace, secret_dir, process_backend)
    seen = asyncio.run(sb.exec(["/bin/sh", "-c", "stat -c %u notes.txt; cat notes.txt"]))
    # Its owner's files are the sandbox user's.
    assert seen.stdout.split() == [INSIDE_UID[process_backend], "mine"]
    preview = asyncio.run(
        sb.preview(["/bin/sh", "-c", "echo more >> notes.txt; echo new > new.txt"])
    )
    assert [m.path for m in preview.effects.modified] == ["notes.txt"]
    assert preview.effects.created == ["new.txt"]
    sb.commit(preview.handle)
    notes = os.stat(workspace / "notes.txt")
    assert (workspace / "notes.txt").read_text() == "mine\nmore\n"
    assert (notes.st_uid, notes.st_mode & 0o777) == (0, 0o600)
    # Written for real (not a preview), a file lands as the workspace owner's.
    asyncio.run(sb.exec(["/bin/sh", "-c", "echo direct > direct.txt"]))
    assert os.stat(workspace / "direct.txt").st_uid == 0


def test_an_mcp_server_runs_as_the_unprivileged_user_too(
    workspace: Path, secret_dir: Path, process_backend: str
) -> None:
    """The long-lived path, started by a spawner that passes no descriptors."""
    sb = sandbox(workspace, secret_dir, process_backend)
    spec = ProcessSpec(
        ["/bin/sh", "-c", "cat /host/secret; stat -c %u /usr; cat /workspace/notes.txt"],
        ro_paths=(str(secret_dir),),
    )

    async def start() -> subprocess.CompletedProcess[str]:
        async with sb.process(spec) as launch:
            return subprocess.run(
                launch.command, env=launch.env, capture_output=True, text=True, timeout=30
            )

    done = asyncio.run(start())
    assert SECRET not in done.stdout
    assert done.stdout.split() == [NOBODY, "mine"]


def test_nothing_is_mounted_where_the_host_can_see_it(
    workspace: Path, secret_dir: Path, process_backend: str
) -> None:
    asyncio.run(sandbox(workspace, secret_dir, process_backend).exec(["/bin/true"]))
    ns = hostuser.namespace()
    assert ns is not None
    host_mounts = Path("/proc/thread-self/mountinfo").read_text()
    assert "idmapped" not in host_mounts
    assert str(ns.base) not in host_mounts
    assert list(ns.base.iterdir()) == []  # on the host, an empty directory


def test_the_self_test_refuses_a_sandbox_mapped_to_host_root(
    monkeypatch: pytest.MonkeyPatch, process_backend: str
) -> None:
    """Break the mapping on purpose (bwrap or runsc started as root again): no sandbox starts."""
    spawner = backend_class(process_backend).spawner
    assert self_test(SandboxSettings(), spawner) is None
    entry = hostuser.Namespace.entry
    as_root = lambda self: replace(entry(self), uid=0, gid=0)  # noqa: E731
    monkeypatch.setattr(hostuser.Namespace, "entry", as_root)
    problem = self_test(SandboxSettings(), spawner)
    assert problem is not None and "host root" in problem


def test_a_replaced_workspace_is_staged_again(
    tmp_path: Path, secret_dir: Path, process_backend: str
) -> None:
    """A worktree removed and made again at the same path is the new one inside."""
    ws = tmp_path / "again"
    ws.mkdir()
    (ws / "f").write_text("old")
    assert asyncio.run(sandbox(ws, secret_dir, process_backend).exec(["cat", "f"])).stdout == "old"
    (ws / "f").unlink()
    ws.rmdir()
    ws.mkdir()
    (ws / "f").write_text("new")
    assert asyncio.run(sandbox(ws, secret_dir, process_backend).exec(["cat", "f"])).stdout == "new"


def test_layouts_are_unchanged_when_not_root(
    monkeypatch: pytest.MonkeyPatch, workspace: Path
) -> None:
    monkeypatch.setattr(hostuser, "running_as_root", lambda: False)
    layout = Layout(workspace)
    assert hostuser.adapt(layout) == (layout, [])


def test_a_missing_bind_is_an_error_never_a_fallback_to_root(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from luminaguard.errors import SandboxError

    sb = BwrapSandbox(workspace, SandboxSettings(pool_size=0), ro_binds=[("/nonexistent/x", "/x")])
    with pytest.raises(SandboxError, match="/nonexistent/x"):
        asyncio.run(sb.exec(["/bin/true"]))
    assert "WARNING" not in capsys.readouterr().err


def test_the_prepared_etc_is_made_once_and_again_when_an_entry_is_replaced(
    tmp_path: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bwrap sandbox's /etc is prepared once in our namespace; a host file
    renamed over one of its entries (as ``ldconfig`` does) is the new one inside."""
    from luminaguard.sandbox import profile

    entry = tmp_path / "lg-test-entry"
    entry.write_text("old")
    entry.chmod(0o644)
    entries = (*profile.etc_entries(), (str(entry), False))
    monkeypatch.setattr(profile, "etc_entries", lambda: entries)
    sb = BwrapSandbox(workspace, SandboxSettings(pool_size=0))
    cat = ["cat", "/etc/lg-test-entry"]
    assert asyncio.run(sb.exec(cat)).stdout == "old"
    first = hostuser.prepared_etc()
    assert hostuser.prepared_etc() == first  # not made again per sandbox
    fresh = tmp_path / "fresh"
    fresh.write_text("new")
    fresh.chmod(0o644)
    fresh.replace(entry)
    assert asyncio.run(sb.exec(cat)).stdout == "new"
    assert hostuser.prepared_etc() != first
