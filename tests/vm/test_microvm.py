"""The micro-VM: its image, boots, the guest agent, snapshot clones and their pool.

Real QEMU, a real Debian kernel and the agent compiled here. Under TCG (no
usable KVM, as on these machines) a cold boot takes seconds: slow-marked.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from luminaguard.vm.image import Image, build_image, describe
from luminaguard.vm.pool import ClonePool
from luminaguard.vm.qemu import Template, Vm, accelerator, clone, kvm_kind, make_template
from tests.conftest import VM_CACHE, missing, vm_image

pytestmark = pytest.mark.slow

# Built once, into the project's cache (as the MCP servers are).
CACHE = VM_CACHE
BUSYBOX = "/bin/busybox"


@pytest.fixture(scope="session")
def image() -> Image:
    if shutil.which("qemu-system-x86_64") is None:
        missing("QEMU is not installed (Debian package qemu-system-x86)")
    built: Image = vm_image()
    return built


@pytest.fixture(scope="session")
def accel(image: Image) -> str:
    return accelerator(image, CACHE).name


@pytest.fixture(scope="session")
def template(image: Image, accel: str) -> Iterator[Template]:
    directory = Path(tempfile.mkdtemp(prefix="lg-vm-template-"))
    yield make_template(image, accel, directory)
    shutil.rmtree(directory, ignore_errors=True)


def test_the_image_is_cached_and_reproducible(image: Image, tmp_path: Path) -> None:
    again, built = build_image(CACHE, say=lambda line: None)
    assert not built and again.directory == image.directory
    # The kernel and initramfs again from nothing (the root image, debootstrap's, is not compared).
    elsewhere, built = build_image(tmp_path, say=lambda line: None, rootfs=False)
    assert built
    assert describe(elsewhere)["initrd_sha256"] == describe(image)["initrd_sha256"]
    assert elsewhere.vmlinux.read_bytes() == image.vmlinux.read_bytes()
    assert image.vmlinux.read_bytes()[:4] == b"\x7fELF"  # booted directly (PVH)


def test_the_agent_runs_commands_with_stdin_output_and_exit_codes(image: Image, accel: str) -> None:
    with Vm(image, accel=accel) as vm:
        assert vm.agent is not None
        r = vm.agent.run([BUSYBOX, "sh", "-c", "cat; echo oops >&2; exit 3"], stdin=b"fed in\n")
        assert (r.exit_code, r.stdout, r.stderr) == (3, b"fed in\n", b"oops\n")
        missing_program = vm.agent.run(["/no/such/program"])
        assert missing_program.exit_code == 127 and b"No such file" in missing_program.stderr
        big = vm.agent.run([BUSYBOX, "sh", "-c", "head -c 300000 /dev/zero"])
        assert len(big.stdout) == 300000
        # Past its time the command's process group is killed, and the agent lives on.
        slow = vm.agent.run([BUSYBOX, "sleep", "30"], timeout_s=0.5)
        assert slow.exit_code == 128 + 9
        assert vm.agent.run([BUSYBOX, "true"]).exit_code == 0


def test_options_set_the_user_and_limits_of_a_command(image: Image, accel: str) -> None:
    with Vm(image, accel=accel) as vm:
        assert vm.agent is not None
        r = vm.agent.run(
            [BUSYBOX, "sh", "-c", "id -u; ulimit -n"],
            options={"uid": "1000", "gid": "1000", "rlimit_nofile": "64", "cwd": "/tmp"},
        )
        assert r.stdout.split() == [b"1000", b"64"], r.stderr


def test_clones_are_fresh_independent_copies_with_their_own_randomness(
    image: Image, accel: str, template: Template
) -> None:
    """Clones of one snapshot start with the same random state: each is given
    a seed at resume and reseeds at once (``Vm.resume``, the agent's 'S'), as
    Firecracker's snapshot docs require. Without both, their draws match."""
    first, second = clone(image, template, accel), clone(image, template, accel)
    try:
        for vm in (first, second):
            vm.resume()
        assert first.agent is not None and second.agent is not None
        first.agent.run([BUSYBOX, "sh", "-c", "echo mine > /tmp/left-behind"])
        seen = second.agent.run([BUSYBOX, "cat", "/tmp/left-behind"])
        assert seen.exit_code != 0  # nothing of one clone shows in another
        draw = [BUSYBOX, "sh", "-c", "head -c 16 /dev/urandom | od -An -tx1"]
        assert first.agent.run(draw).stdout != second.agent.run(draw).stdout
    finally:
        first.close()
        second.close()


def test_the_pool_hands_out_each_clone_once(image: Image, accel: str, template: Template) -> None:
    pool = ClonePool(image, template, accel, size=1)
    try:
        pool.fill()
        assert pool.wait_idle(1, 120)
        pids = set()
        for _ in range(2):
            vm = pool.acquire()
            try:
                assert vm.agent is not None and vm.proc is not None
                assert vm.agent.run([BUSYBOX, "true"]).exit_code == 0
                pids.add(vm.proc.pid)
            finally:
                vm.close()
        assert len(pids) == 2  # a fresh clone per task, never one handed back
        stats = pool.stats_dict()
        assert stats["served"] == 2 and stats["failures"] == 0
    finally:
        pool.close()


def test_qemu_runs_confined(image: Image, accel: str) -> None:
    with Vm(image, accel=accel) as vm:
        assert vm.proc is not None
        status = dict(
            line.split(":", 1)
            for line in Path(f"/proc/{vm.proc.pid}/status").read_text().splitlines()
        )
        assert status["Seccomp"].strip() == "2"  # QEMU's -sandbox filter
        if os.geteuid() == 0:
            from luminaguard.sandbox.hostuser import HOST_ID

            assert status["Uid"].split()[0] == str(HOST_ID)
            assert status["CapEff"].strip() == "0000000000000000"


def test_the_accelerator_is_kvm_only_where_kvm_really_boots(image: Image) -> None:
    found = accelerator(image, CACHE)
    kind = kvm_kind()
    if kind != "real":
        assert found.name == "tcg" and ("PVM" in found.why or "no /dev/kvm" in found.why)
    else:
        assert found.name in ("kvm", "tcg") and found.why


ORPHAN = """
import sys, time
from pathlib import Path
from luminaguard.vm.image import find_image
from luminaguard.vm.qemu import Vm
vm = Vm(find_image(Path(sys.argv[1])), accel=sys.argv[2])
print(vm.proc.pid, flush=True)
time.sleep(120)
"""


def test_the_vms_of_a_process_killed_with_9_are_swept(image: Image, accel: str) -> None:
    import signal
    import subprocess
    import sys

    from luminaguard.vm.qemu import sweep_stale

    owner = subprocess.Popen(
        [sys.executable, "-c", ORPHAN, str(CACHE), accel], stdout=subprocess.PIPE, text=True
    )
    assert owner.stdout is not None
    qemu = int(owner.stdout.readline())
    owner.send_signal(signal.SIGKILL)
    owner.wait(10)
    assert Path(f"/proc/{qemu}").exists()  # orphaned: nobody closed it
    assert sweep_stale() >= 1
    for _ in range(100):
        if not Path(f"/proc/{qemu}").exists():
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the orphaned QEMU still runs")


def test_a_runtimes_spare_clones_go_when_its_process_exits(image: Image) -> None:
    import subprocess
    import sys

    code = (
        "from luminaguard.vm.backend import Runtime; r = Runtime.get(2); "
        "r.pool.wait_idle(2, 120); print('ready', flush=True)"
    )
    env = {**os.environ, "LUMINAGUARD_VM_DATA": str(CACHE)}
    child = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True
    )
    out, _ = child.communicate(timeout=300)
    assert "ready" in out
    # Every VM directory of that process went with it (its spares were closed).
    theirs = [
        d
        for d in Path(tempfile.gettempdir()).glob("lg-vm-*")
        if (d / "owner").exists() and (d / "owner").read_text() == str(child.pid)
    ]
    assert theirs == []
