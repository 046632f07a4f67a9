"""A swarm worker: claims items one at a time and runs each as an agent in its
own worktree, heart-beating its lease from the same event loop as the agent
(so a worker whose loop is stuck stops beating and is noticed).

    python -m luminaguard.swarm.worker --repo DIR --agent ID [--policy FILE] [--approver inbox|none]

It dies with its coordinator (PR_SET_PDEATHSIG), and on SIGTERM it stops the
running item and gives its lease back without counting the attempt.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from luminaguard.errors import LeaseLost
from luminaguard.policy.policyfile import load_policy
from luminaguard.store import private_file
from luminaguard.swarm import worktree
from luminaguard.swarm.queue import Item, Queue, queue_path

IDLE_POLL_S = 0.2
BEAT_S = 1.0


def die_with_parent(parent: int | None) -> None:
    """Be killed when the coordinator dies. It may have died already, while
    this interpreter started (before the request could be made): then go now,
    rather than live on as an orphan."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if parent is not None and os.getppid() != parent:
        os._exit(1)


class Worker:
    def __init__(
        self,
        repo: Path,
        agent_id: str,
        *,
        policy: Path | None,
        approver: str,
        lease_s: float,
        keep: bool,
        log: TextIO,
    ) -> None:
        self.repo = repo
        self.agent_id = agent_id
        self.owner = f"{agent_id}/{os.getpid()}"
        # Read once: every item of this worker runs under the same policy.
        self.policy = load_policy(policy)
        self.approver = approver
        self.lease_s = lease_s
        self.keep = keep
        self.log = log
        self.queue = Queue(queue_path(repo))
        self.base = worktree.base_branch(repo)
        self.stop = asyncio.Event()
        self.item: Item | None = None
        self.run_id: str | None = None
        self.action: str | None = None

    def beat(self) -> None:
        state = "running" if self.item else "idle"
        self.queue.agent_beat(
            self.agent_id,
            pid=os.getpid(),
            state=state,
            item=self.item.id if self.item else None,
            run_id=self.run_id,
            action=self.action,
        )
        if self.item is not None:
            self.queue.heartbeat(self.item.id, self.item.token, self.lease_s)

    async def main(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        self.beat()
        while not self.stop.is_set():
            item = self.queue.claim(self.owner, self.lease_s)
            if item is None:
                self.beat()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), IDLE_POLL_S)
                continue
            await self.work(item)
        self.queue.agent_gone(self.agent_id)

    async def work(self, item: Item) -> None:
        self.item, self.action = item, f"claimed {item.id}"
        self.beat()
        path = worktree.create(self.repo, item.id, item.branch, self.base)
        run = asyncio.create_task(self.run_agent(item, path))
        stopped = asyncio.create_task(self.stop.wait())
        lost = False
        try:
            while not run.done():
                await asyncio.wait(
                    {run, stopped}, timeout=BEAT_S, return_when=asyncio.FIRST_COMPLETED
                )
                if stopped.done() and not run.done():
                    run.cancel()
                    break
                try:
                    self.beat()
                except LeaseLost:
                    lost = True
                    run.cancel()
                    break
            # Wait without re-raising: how the run ended is read below.
            await asyncio.wait({run})
            if lost:
                self.say(f"{item.id}: lease lost, dropped")
            elif run.cancelled():
                self.queue.fail(
                    item.id, item.token, "stopped by the coordinator", count_attempt=False
                )
                self.say(f"{item.id}: released (stopping)")
            elif run.exception() is not None:
                self.queue.fail(
                    item.id, item.token, f"{type(run.exception()).__name__}: {run.exception()}"
                )
                self.say(f"{item.id}: attempt failed: {run.exception()}")
            else:
                outcome, message, run_id = run.result()
                if outcome == "finished":
                    commit = worktree.commit(
                        self.repo, path, f"{item.task}\n\nLuminaGuard run {run_id} (item {item.id})"
                    )
                    self.queue.complete(
                        item.id,
                        item.token,
                        {"run_id": run_id, "commit": commit, "outcome": outcome},
                    )
                    self.say(f"{item.id}: done ({commit or 'no changes'})")
                else:
                    self.queue.fail(item.id, item.token, f"{outcome}: {message}")
                    self.say(f"{item.id}: attempt ended {outcome}: {message}")
        except LeaseLost as exc:
            self.say(f"{item.id}: {exc}")
        finally:
            stopped.cancel()
            self.item, self.run_id, self.action = None, None, None
            if not self.keep:
                worktree.remove(self.repo, path)

    async def run_agent(self, item: Item, path: Path) -> tuple[str, str, str]:
        from luminaguard.agent.session import Session, SessionOptions
        from luminaguard.config import load_settings
        from luminaguard.policy.approver import make_approver
        from luminaguard.ui.terminal import TerminalReport, render_card

        # The worktree's config is trusted only as its repository's (`luminaguard trust REPO`).
        settings = load_settings(path, trusted_as=self.repo)
        # One sandbox per command: a warm pool per item would cost more than it saves here.
        settings.sandbox.pool_size = 0
        spec = f"scripted/{item.playbook}" if item.playbook else item.model or settings.model
        terminal = TerminalReport(out=self.log)

        def report(event: str, data: dict[str, Any]) -> None:
            if event == "tool_call":
                self.action = f"{data['call'].name} [{data['assessment'].risk.label}]"
            elif event == "approval_waiting":
                # Shown by `swarm status`: where the card waits.
                self.action = f"waiting for approval #{data['id']} (luminaguard approvals)"
            terminal(event, data)

        options = SessionOptions(
            workspace=path,
            spec=spec,
            policy=self.policy,
            backend=settings.sandbox.backend,
            max_steps=settings.agent.max_steps,
            approver=make_approver(
                self.approver,
                None,
                settings.data_dir,
                self.policy.approval_timeout_s,
                render=render_card,
            ),
            report=report,
            agent_name=self.agent_id,
            # The worktree's `.git` names the repository's git dir: visible
            # read-only, git in the sandbox can read history and status (the
            # worker commits, on the host).
            ro_binds=worktree.sandbox_binds(self.repo),
        )
        session = Session(settings, options, task=item.task)
        self.run_id = session.run_id
        try:
            result = await session.run()
        finally:
            session.close()
        return result.outcome, result.message, result.run_id

    def say(self, text: str) -> None:
        self.log.write(f"[{time.strftime('%H:%M:%S')}] {self.agent_id}: {text}\n")
        self.log.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="luminaguard.swarm.worker")
    parser.add_argument("--repo", type=Path, required=True)
    parser.add_argument("--agent", required=True)
    parser.add_argument("--policy", type=Path)
    parser.add_argument("--approver", default="inbox")
    parser.add_argument("--lease", type=float, default=30.0)
    parser.add_argument("--keep-worktrees", action="store_true")
    parser.add_argument("--parent", type=int, help="the coordinator's pid")
    args = parser.parse_args(argv)
    die_with_parent(args.parent)
    log_path = args.repo / ".luminaguard" / "logs" / f"{args.agent}.log"
    with open(private_file(log_path), "a", encoding="utf-8") as log:
        worker = Worker(
            args.repo.resolve(),
            args.agent,
            policy=args.policy,
            approver=args.approver,
            lease_s=args.lease,
            keep=args.keep_worktrees,
            log=log,
        )
        asyncio.run(worker.main())
    return 0


if __name__ == "__main__":
    sys.exit(main())
