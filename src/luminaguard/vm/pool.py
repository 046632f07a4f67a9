"""The snapshot clone pool: paused clones of a booted guest, ready in milliseconds.

A template is booted once to a ready agent and saved (``qemu.make_template``).
Each spare is a clone restored from it, resumed once (given randomness of its
own, its code paths warmed: under TCG a fresh process translates the guest's
code again), then paused: a paused clone costs memory it has not written and
no CPU. Acquiring one is ``cont`` and the first command.

A clone serves one task and is then destroyed, never handed to another: a
restored clone is a fresh copy of the template, nothing of a previous task in
it. The pool refills on its own thread.
"""

from __future__ import annotations

import contextlib
import time

from luminaguard.errors import VmError
from luminaguard.sandbox.pool import Spares
from luminaguard.vm.image import Image
from luminaguard.vm.qemu import Template, Vm, clone

WARM_UP = ["/bin/busybox", "true"]
REHEARSAL = [
    "/bin/busybox",
    "sh",
    "-c",
    "mkdir -p /tmp/r/l /tmp/r/u /tmp/r/w /tmp/r/m && tar -c -C /bin . | tar -x -C /tmp/r/l && "
    "mount -t overlay overlay -o lowerdir=/tmp/r/l,upperdir=/tmp/r/u,workdir=/tmp/r/w /tmp/r/m && "
    "echo x > /tmp/r/m/x && tar -c -C /tmp/r/u . > /dev/null && umount /tmp/r/m && rm -rf /tmp/r",
]
"""What each spare rehearses before it is paused: under TCG, code a clone has
not run yet is translated on first use, so the set-up steps of a command
(unpack, overlay, pack) are run once on nothing, leaving nothing behind."""


READY_S = 15.0
"""A spare's warm-up steps take milliseconds, seconds on a loaded host. Past
this the clone is taken for stuck, dropped, and another made (counted in
``replaced``). Image version 2's agent could hang a command for good (a few
clones in a hundred under TCG on a loaded host; see docs/architecture.md);
this stays as the defence against a guest that stops for another reason."""
MAKE_TRIES = 3


def ready_clone(image: Image, template: Template, accel: str) -> Vm:
    """A clone of ``template``, resumed, warmed up (``WARM_UP``, ``REHEARSAL``)
    and paused again: what a pool keeps. VmError (AgentTimeout too) if it is
    stuck or its warm-up fails; the clone is closed then."""
    vm = clone(image, template, accel)
    try:
        vm.resume()
        assert vm.agent is not None
        vm.agent.ping()
        for step in (WARM_UP, REHEARSAL):
            r = vm.agent.run(step, timeout_s=READY_S)
            if r.timed_out or r.exit_code != 0:
                raise VmError(f"a fresh clone's warm-up ended {r.exit_code}: {r.stderr[-200:]!r}")
        vm.pause()
    except BaseException:
        vm.close()
        raise
    return vm


class ClonePool(Spares[Vm]):
    """Keeps ``size`` paused clones of ``template`` ready."""

    def __init__(self, image: Image, template: Template, accel: str, size: int) -> None:
        super().__init__(size, "lg-vm-pool")
        self.image = image
        self.template = template
        self.accel = accel

    def _make(self) -> Vm:
        started = time.monotonic()
        for attempt in range(1, MAKE_TRIES + 1):
            try:
                vm = ready_clone(self.image, self.template, self.accel)
                break
            except VmError:  # AgentTimeout too
                if attempt == MAKE_TRIES or self._closed:  # a closing pool waits on no retry
                    raise  # a failure (``_refill_one``), or the acquire's error
                self.stats.replaced += 1
        self.stats.spawn_ms.append((time.monotonic() - started) * 1000)
        self.stats.spawned += 1
        return vm

    def _drop(self, spare: Vm) -> None:
        spare.close()

    def acquire(self) -> Vm:
        """A running clone for one task (a ready one, or a new one when none
        is ready); the caller closes it when the task is done."""
        started = time.monotonic()
        vm = self._take()
        if vm is None:
            self.stats.waiters += 1
            try:
                vm = self._make()
            finally:
                self.stats.waiters -= 1
        assert vm.qmp is not None
        vm.qmp.command("cont")
        self.stats.acquire_ms.append((time.monotonic() - started) * 1000)
        self.fill()
        return vm

    def close(self) -> None:
        self._closed = True
        self._executor.shutdown(wait=True, cancel_futures=True)
        while self.idle:
            with contextlib.suppress(Exception):
                self.idle.popleft().close()
