"""The native launcher a sandbox starts by: a spare is already in its cgroups,
is used once, runs exactly what it is told, refuses what it cannot do before
anything runs, and no spare outlives the process that made it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from luminaguard.sandbox import native
from luminaguard.sandbox.cgroups import support
from luminaguard.sandbox.hostuser import Entry
from luminaguard.sandbox.launcher import Launcher, Spares
from luminaguard.sandbox.process import Limits
from tests.conftest import missing

SIZES = (256 * 1024 * 1024, 64)
LIMITS = Limits(memory_bytes=1 << 30, cpu_s=7, file_bytes=1 << 20, open_files=64)


@pytest.fixture
def binary() -> Path:
    path = native.launcher()
    if path is None:
        missing("the launcher needs a C compiler (gcc)")
    assert path is not None
    return path


def run(
    launcher: Launcher, argv: list[str], env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    proc = launcher.start(argv, env or {}, limits=LIMITS, entry=None, data_used=())
    out, err = proc.communicate(timeout=10)
    launcher.cgroup.destroy()
    return proc.returncode, out.decode(), err.decode()


def test_it_runs_exactly_the_command_environment_and_limits_it_is_given(binary: Path) -> None:
    code, out, _ = run(
        Launcher(binary, SIZES, {}),
        ["/bin/sh", "-c", 'ulimit -t; ulimit -n; ulimit -f; env; echo "$0 $1"', "a b", "c"],
        {"ONLY": "this"},
    )
    lines = out.splitlines()
    # ulimit -f counts 512-byte blocks; sh sets PWD itself.
    assert lines[:3] == ["7", "64", str((1 << 20) // 512)]
    assert sorted(x for x in lines[3:-1] if not x.startswith("PWD=")) == ["ONLY=this"]
    assert lines[-1] == "a b c" and code == 0


def test_a_launcher_is_in_its_cgroups_before_it_is_told_anything(binary: Path) -> None:
    if support().mechanism == "rlimits":
        missing(f"no cgroups to join here: {support().reason}")
    launcher = Launcher(binary, SIZES, {})
    names = {d.name for d in launcher.cgroup.dirs}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        joined = Path(f"/proc/{launcher.proc.pid}/cgroup").read_text()
        if all(name in joined for name in names):
            break
        time.sleep(0.01)
    assert all(name in joined for name in names), joined
    assert launcher.alive()  # waiting, not run
    launcher.discard()
    assert not any(d.exists() for d in launcher.cgroup.dirs)


def test_what_it_cannot_do_fails_before_anything_runs(binary: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    launcher = Launcher(binary, SIZES, {})
    proc = launcher.start(
        ["/bin/sh", "-c", f"touch {marker}"],
        {},
        limits=LIMITS,
        entry=Entry(str(tmp_path / "no-such-namespace"), 65534, 65534),
        data_used=(),
    )
    _, err = proc.communicate(timeout=10)
    launcher.cgroup.destroy()
    assert proc.returncode == 125
    assert err.decode().count("\n") == 1 and "cannot enter mount namespace" in err.decode()
    assert not marker.exists()

    code, _, err = run(Launcher(binary, SIZES, {}), [str(tmp_path / "missing")])
    assert code == 127 and "cannot run" in err


def test_a_null_byte_is_refused_not_cut(binary: Path) -> None:
    launcher = Launcher(binary, SIZES, {})
    with pytest.raises(ValueError, match="null byte"):
        launcher.start(["/bin/echo", "a\0b"], {}, limits=LIMITS, entry=None, data_used=())
    launcher.discard()
    assert not any(d.exists() for d in launcher.cgroup.dirs)


def test_the_spare_is_used_by_the_next_start_and_a_new_one_made(binary: Path) -> None:
    spares = Spares()
    try:
        first = spares.take(SIZES, {})
        assert first is not None
        spare = _wait_for_spare(spares)
        second = spares.take(SIZES, {})
        assert second is spare and second is not first
        assert _wait_for_spare(spares) not in (first, second)
        for launcher in (first, second):
            code, out, _ = run(launcher, ["/bin/echo", "ok"])
            assert (code, out) == (0, "ok\n")
    finally:
        spares.close()


def test_no_spare_outlives_the_process_that_made_it(binary: Path, tmp_path: Path) -> None:
    script = (
        "import time\n"
        "from luminaguard.sandbox.launcher import SPARES\n"
        f"SPARES.take({SIZES!r}, {{}}).discard()\n"
        "while not SPARES._idle: time.sleep(0.01)\n"
        "spare = next(iter(SPARES._idle.values()))\n"
        "print(spare.proc.pid, *spare.cgroup.dirs)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    pid, dirs = int(out[0]), [Path(d) for d in out[1:]]
    assert not _running(pid)
    assert not any(d.exists() for d in dirs)


def _wait_for_spare(spares: Spares) -> Launcher:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with spares._lock:
            idle = list(spares._idle.values())
        if idle:
            return idle[0]
        time.sleep(0.01)
    raise AssertionError("no spare was made")


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z" and os.path.exists(f"/proc/{pid}")
