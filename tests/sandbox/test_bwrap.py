"""The first bubblewrap backend against a real bwrap. Every attack here is
harmless if the sandbox were broken: unique temp names, nothing outside them."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from luminaguard.config import SandboxSettings
from luminaguard.errors import UsageError
from luminaguard.protocols import ExecResult
from luminaguard.sandbox import open_sandbox
from luminaguard.sandbox.bwrap import BwrapSandbox


def sh(workspace: Path, script: str, **settings: object) -> ExecResult:
    sandbox = BwrapSandbox(workspace, SandboxSettings(**{"timeout_s": 30, **settings}))  # type: ignore[arg-type]
    return asyncio.run(sandbox.exec(["/bin/bash", "-c", script]))


def test_the_exit_code_and_output_pass_through(workspace: Path) -> None:
    r = sh(workspace, "echo out; echo err >&2; exit 42")
    assert (r.exit_code, r.stdout, r.stderr) == (42, "out\n", "err\n")


def test_the_workspace_is_writable_and_is_the_working_directory(workspace: Path) -> None:
    r = sh(workspace, "pwd; echo data > made-inside")
    assert r.stdout.strip() == "/workspace"
    assert (workspace / "made-inside").read_text() == "data\n"


def test_it_runs_as_an_unprivileged_uid_with_no_capabilities(workspace: Path) -> None:
    r = sh(workspace, "id -u; grep -E '^Cap(Eff|Prm|Amb)' /proc/self/status")
    lines = r.stdout.split()
    assert lines[0] == "1000"
    assert lines[1:] == [
        "CapPrm:",
        "0000000000000000",
        "CapEff:",
        "0000000000000000",
        "CapAmb:",
        "0000000000000000",
    ]


def test_no_host_secret_is_visible_in_the_environment_or_procs(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "lg-secret-" + secrets.token_hex(8)
    monkeypatch.setenv("LG_TEST_SECRET_TOKEN", secret)
    r = sh(workspace, "env; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'")
    assert r.exit_code == 0
    assert secret not in r.stdout
    assert "LG_TEST_SECRET_TOKEN" not in r.stdout
    assert "PATH=/usr/local/sbin" in r.stdout


def test_writes_outside_the_workspace_fail(workspace: Path, tmp_path: Path) -> None:
    target = tmp_path / f"escape-{secrets.token_hex(4)}"
    r = sh(
        workspace,
        f"echo x > {target}; echo x > /usr/lg-escape-{secrets.token_hex(4)}; echo x > ../escape; true",
    )
    assert not target.exists()
    assert not (workspace.parent / "escape").exists()
    assert (
        r.stderr.count("No such file or directory") + r.stderr.count("Read-only file system") >= 2
    )


def test_home_directories_and_host_paths_are_hidden(workspace: Path) -> None:
    r = sh(workspace, "ls -a /root /home /run /var 2>&1; ls /")
    assert "No such file or directory" in r.stdout
    top = set(r.stdout.split())
    assert "root" not in top and "home" not in top and "run" not in top


def test_only_the_allowed_devices_exist(workspace: Path) -> None:
    r = sh(workspace, "ls /dev")
    devices = set(r.stdout.split())
    assert {"null", "zero", "full", "random", "urandom", "tty"} <= devices
    assert not {"kvm", "sda", "vda", "mem", "kmsg"} & devices


@pytest.fixture
def host_listener() -> Iterator[int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    yield server.getsockname()[1]
    # Any connection that reached us is queued by now: accept without waiting.
    server.setblocking(False)
    with pytest.raises(BlockingIOError):
        server.accept()
    server.close()


def test_there_is_no_network_not_even_host_loopback(workspace: Path, host_listener: int) -> None:
    r = sh(
        workspace,
        f"exec 3<>/dev/tcp/127.0.0.1/{host_listener} && echo CONNECTED; ls /sys/class/net 2>/dev/null; cat /proc/net/dev",
    )
    assert "CONNECTED" not in r.stdout
    assert "eth0" not in r.stdout


def test_a_runaway_command_is_killed_with_its_whole_process_tree(workspace: Path) -> None:
    r = sh(workspace, "(sleep 300 &) ; sleep 300", timeout_s=1)
    assert r.timed_out and r.exit_code == 124
    assert r.duration_s < 10


def test_output_beyond_the_limit_is_dropped_and_noted(workspace: Path) -> None:
    r = sh(workspace, "head -c 5000000 /dev/zero | tr '\\0' 'a'", output_limit_kb=1)
    assert r.truncated
    assert r.stdout.startswith("a" * 1024)
    assert "more bytes not kept" in r.stdout
    assert len(r.stdout) < 2000


def test_files_larger_than_the_limit_cannot_be_written(workspace: Path) -> None:
    r = sh(workspace, "head -c 3000000 /dev/zero > big", max_file_mb=1)
    assert r.exit_code != 0
    assert (workspace / "big").stat().st_size <= 1024 * 1024


def test_an_unknown_backend_names_the_known_ones(workspace: Path) -> None:
    with pytest.raises(UsageError, match="known backends: bwrap"):
        open_sandbox("nosuch", workspace, SandboxSettings())


def test_the_sandbox_does_not_see_our_process_tree(workspace: Path) -> None:
    r = sh(workspace, "ls /proc | grep -E '^[0-9]+$' | wc -l; cat /proc/1/cmdline | tr '\\0' ' '")
    count, cmdline = r.stdout.split("\n", 1)
    assert int(count) < 10
    assert str(os.getpid()) not in r.stdout.split()
    assert "bwrap" in cmdline or "bash" in cmdline


def test_a_command_runs_in_a_session_of_its_own_inside_the_sandbox(workspace: Path) -> None:
    # With bwrap's --new-session the command's session leader is inside the
    # sandbox (a visible pid); without it, the session is the host's (0 here),
    # and TIOCSTI could reach our terminal.
    r = sh(workspace, "cut -d' ' -f6 /proc/self/stat", pool_size=0)
    assert r.stdout.strip() not in ("", "0"), r.stdout


def test_no_sandbox_starts_when_the_self_test_found_a_problem(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from luminaguard.errors import SandboxUnavailable
    from luminaguard.sandbox import bwrap, selftest, spawn

    failing = selftest.Gate(lambda settings: "a write outside the workspace landed on the host")
    monkeypatch.setattr(selftest, "GATE", failing)
    with pytest.raises(SandboxUnavailable, match="landed on the host"):
        sh(workspace, "true", pool_size=0)
    with pytest.raises(SandboxUnavailable):
        spawn.Spawn(bwrap.Layout(workspace), SandboxSettings(), ["/bin/true"])
