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
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from luminaguard.sandbox.pool import PoolStats
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


class ClonePool:
    """Keeps ``size`` paused clones of ``template`` ready."""

    def __init__(self, image: Image, template: Template, accel: str, size: int) -> None:
        self.image = image
        self.template = template
        self.accel = accel
        self.size = size
        self.idle: deque[Vm] = deque()
        self.stats = PoolStats()
        self._spawning = 0
        self._closed = False
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lg-vm-pool")

    def _spare(self) -> Vm:
        started = time.monotonic()
        vm = clone(self.image, self.template, self.accel)
        try:
            vm.resume()
            assert vm.agent is not None
            vm.agent.ping()
            vm.agent.run(WARM_UP)
            vm.agent.run(REHEARSAL)
            vm.pause()
        except BaseException:
            vm.close()
            raise
        self.stats.spawn_ms.append((time.monotonic() - started) * 1000)
        self.stats.spawned += 1
        return vm

    def fill(self) -> None:
        with self._lock:
            wanted = 0 if self._closed else self.size - len(self.idle) - self._spawning
            self._spawning += max(0, wanted)
        for _ in range(max(0, wanted)):
            self._executor.submit(self._refill_one)

    def _refill_one(self) -> None:
        try:
            vm: Vm | None = self._spare()
        except Exception:
            self.stats.failures += 1
            vm = None
        with self._lock:
            self._spawning -= 1
            if vm is not None and not self._closed:
                self.idle.append(vm)
                vm = None
            self._changed.notify_all()
        if vm is not None:
            vm.close()

    def wait_idle(self, count: int, timeout_s: float) -> bool:
        with self._changed:
            return self._changed.wait_for(
                lambda: len(self.idle) >= count or self._closed, timeout_s
            )

    def acquire(self) -> Vm:
        """A running clone for one task (a ready one, or a new one when none
        is ready); the caller closes it when the task is done."""
        started = time.monotonic()
        with self._lock:
            vm = self.idle.popleft() if self.idle else None
        self.stats.served += 1
        self.stats.served_idle += vm is not None
        if vm is None:
            self.stats.waiters += 1
            try:
                vm = self._spare()
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

    def stats_dict(self) -> dict[str, object]:
        return self.stats.to_dict(idle=len(self.idle))
