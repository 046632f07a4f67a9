"""The coordinator: N worker processes, watched and replaced.

A worker that died, or whose heartbeat is older than `hung_after_s`, is
killed, its item is returned to the queue at once, and a replacement starts.
Expired leases (a worker that vanished without being noticed) go back to the
queue through the reaper. Ctrl-C stops gracefully: workers stop their item
and give the lease back. A restarted coordinator carries on from the queue:
leases of workers that no longer exist are reclaimed at start, and their
worktrees removed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from luminaguard.swarm import worktree
from luminaguard.swarm.queue import Queue, queue_path

CHECK_S = 0.25


@dataclass
class Slot:
    agent_id: str
    proc: subprocess.Popen[bytes]
    started: float

    @property
    def owner(self) -> str:
        return f"{self.agent_id}/{self.proc.pid}"


def worker_alive(pid: int | None) -> bool:
    """A live (not zombie) swarm worker with this pid; a reused pid does not count."""
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    # A worker whose parent died may linger as a zombie until it is reaped.
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X") and b"luminaguard.swarm.worker" in cmdline


class Coordinator:
    def __init__(
        self,
        repo: Path,
        agents: int,
        *,
        until_empty: bool = False,
        policy: Path | None = None,
        approver: str = "inbox",
        lease_s: float = 30.0,
        hung_after_s: float = 5.0,
        keep_worktrees: bool = False,
        grace_s: float = 20.0,
    ) -> None:
        self.repo = repo.resolve()
        self.agents = agents
        self.until_empty = until_empty
        self.policy = policy.resolve() if policy else None
        self.approver = approver
        self.lease_s = lease_s
        self.hung_after_s = hung_after_s
        self.keep = keep_worktrees
        self.grace_s = grace_s
        self.queue = Queue(queue_path(self.repo))
        self.slots: list[Slot] = []
        self.stopping = False
        self.replaced = 0

    def log(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    def spawn(self, agent_id: str) -> Slot:
        cmd = [
            sys.executable,
            "-m",
            "luminaguard.swarm.worker",
            "--repo",
            str(self.repo),
            "--agent",
            agent_id,
            "--approver",
            self.approver,
            "--lease",
            str(self.lease_s),
            "--parent",
            str(os.getpid()),
        ]
        if self.policy:
            cmd += ["--policy", str(self.policy)]
        if self.keep:
            cmd.append("--keep-worktrees")
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True)
        return Slot(agent_id, proc, time.time())

    def recover(self) -> None:
        """Reclaim the leases of workers from an earlier coordinator that are gone."""
        for agent in self.queue.agents():
            if not worker_alive(agent["pid"]) and agent["state"] != "stopped":
                back = self.queue.reap(owner=f"{agent['id']}/{agent['pid']}")
                if back:
                    self.log(
                        f"reclaimed {', '.join(back)} from {agent['id']} (pid {agent['pid']} is gone)"
                    )
                self.queue.agent_gone(agent["id"], "gone")
        self.queue.reap()
        removed = worktree.clean_stale(self.repo, self.queue.running_items())
        if removed:
            self.log(f"removed stale worktrees: {', '.join(removed)}")

    def replace(self, i: int, why: str) -> None:
        slot = self.slots[i]
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(slot.proc.pid, signal.SIGKILL)
        slot.proc.wait()
        back = self.queue.reap(owner=slot.owner)
        self.queue.agent_gone(slot.agent_id, "replaced")
        self.log(
            f"{slot.agent_id} (pid {slot.proc.pid}) {why}; {'returned ' + ', '.join(back) + ' to the queue; ' if back else ''}starting a replacement"
        )
        self.replaced += 1
        self.slots[i] = self.spawn(slot.agent_id)

    def check(self) -> None:
        beats = {a["id"]: a for a in self.queue.agents()}
        now = time.time()
        for i, slot in enumerate(self.slots):
            if slot.proc.poll() is not None:
                self.replace(i, f"exited with {slot.proc.returncode}")
                continue
            agent = beats.get(slot.agent_id)
            fresh = agent is not None and agent["pid"] == slot.proc.pid
            age = agent["heartbeat_age_s"] if fresh and agent else now - slot.started
            if age > self.hung_after_s:
                self.replace(i, f"missed its heartbeat for {age:.1f} s")
        self.queue.reap()

    def run(self) -> int:
        worktree.require_repo(self.repo)
        self.recover()
        previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.slots = [self.spawn(f"agent-{n + 1}") for n in range(self.agents)]
            self.log(f"started {self.agents} agent(s) on {self.repo}")
            while not self.stopping:
                time.sleep(CHECK_S)
                self.check()
                counts = self.queue.counts()
                if self.until_empty and counts["queued"] == 0 and counts["running"] == 0:
                    self.log(f"queue empty: {counts['done']} done, {counts['failed']} failed")
                    break
        finally:
            self.shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        counts = self.queue.counts()
        return 0 if counts["failed"] == 0 else 1

    def _stop(self, signum: int, frame: object) -> None:
        self.stopping = True

    def shutdown(self) -> None:
        for slot in self.slots:
            if slot.proc.poll() is None:
                slot.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        for slot in self.slots:
            with contextlib.suppress(subprocess.TimeoutExpired):
                slot.proc.wait(max(0.1, deadline - time.monotonic()))
            if slot.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(slot.proc.pid, signal.SIGKILL)
                slot.proc.wait()
            self.queue.reap(owner=slot.owner)
            self.queue.agent_gone(slot.agent_id)
