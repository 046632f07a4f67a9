"""Who is asked when the policy and the grants leave a decision open: a
person at a terminal, the shared inbox, or nobody.

With nobody to ask, the answer is a denial: nothing that needs approval ever
runs unattended by default. (The policy's levels and grants are applied
before any of these, by the gate.)
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TextIO, TypeVar

from luminaguard.core.card import DiffCard
from luminaguard.core.grant import GRANT_HOURS, new_grant
from luminaguard.core.risk import Risk
from luminaguard.core.text import wants_color
from luminaguard.errors import UsageError
from luminaguard.policy.permissions import local_user
from luminaguard.protocols import ApprovalRequest, Approver, Decision

T = TypeVar("T")


class CardRenderer(Protocol):
    """Turns a Diff Card into the text a person reads (``ui.cards.render_card_text``)."""

    def __call__(self, card: DiffCard, *, color: bool = False) -> str: ...


class Unattended:
    """Nobody to ask: every question is a denial."""

    async def decide(self, request: ApprovalRequest) -> Decision:
        level = request.card.risk.label
        return Decision(
            False,
            "unattended",
            f"{level} actions need approval and there is no one to ask (no terminal, and the policy does not allow them)",
        )

    async def elicit(
        self,
        server: str,
        message: str,
        schema: dict[str, Any] | None,
        *,
        context: dict[str, Any] | None = None,
    ) -> tuple[str, dict[str, Any] | None]:
        """Nobody to answer a server's question: declined."""
        return "decline", None


def on_daemon_thread(work: Callable[[], T]) -> asyncio.Future[T]:
    """``work()`` (reading the terminal: it blocks) on a thread, its answer as
    a future of the running loop. The thread is a daemon: left blocked on a
    read when the loop is done with it, it cannot keep the process from ending."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[T] = loop.create_future()

    def run() -> None:
        try:
            value = work()
        except BaseException as exc:  # handed to the waiting task
            loop.call_soon_threadsafe(_settle, answer, None, exc)
        else:
            loop.call_soon_threadsafe(_settle, answer, value, None)

    threading.Thread(target=run, name="lg-prompt", daemon=True).start()
    return answer


def _settle(answer: asyncio.Future[T], value: T | None, exc: BaseException | None) -> None:
    """The first answer counts (the reader's, or a Ctrl-C's)."""
    if answer.done():
        return
    if exc is not None:
        answer.set_exception(exc)
    else:
        answer.set_result(value)  # type: ignore[arg-type]


class TerminalApprover:
    """A plain prompt: y approve, g approve with a grant, n deny (with a reason), q deny and end the run."""

    def __init__(
        self,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        *,
        render: CardRenderer,
        principal: str | None = None,
        grant_hours: float = GRANT_HOURS,
    ) -> None:
        self.render = render
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self.principal = principal or local_user()
        self.grant_hours = grant_hours

    async def decide(self, request: ApprovalRequest) -> Decision:
        who = self.principal
        interrupted = Decision(
            False, who, "interrupted at the prompt (Ctrl-C)", stop=True, principal=who
        )
        return await self._interruptible(lambda: self._ask(request), interrupted)

    async def _interruptible(self, ask: Callable[[], T], interrupted: T) -> T:
        """Ask on a thread (``on_daemon_thread``); one Ctrl-C answers
        ``interrupted`` at once."""
        loop = asyncio.get_running_loop()
        answer = on_daemon_thread(ask)
        previous = signal.getsignal(signal.SIGINT)
        hooked = False
        try:
            loop.add_signal_handler(signal.SIGINT, _settle, answer, interrupted, None)
            hooked = True
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread: Ctrl-C keeps its usual meaning
        try:
            value = await answer
        finally:
            if hooked:
                loop.remove_signal_handler(signal.SIGINT)
                signal.signal(signal.SIGINT, previous)
        if value is interrupted:
            with contextlib.suppress(OSError, ValueError):
                self.stdout.write("\n(interrupted: denied, and the run ends)\n")
                self.stdout.flush()
        return value

    def _ask(self, request: ApprovalRequest) -> Decision:
        out = self.stdout
        out.write(self.render(request.card, color=wants_color(out)))
        who = self.principal
        card = request.card
        if not (card.effects or {}).get("rerun"):
            # Said before it is made: what `g` would answer without asking.
            lasts = "this run" if card.risk >= Risk.ORANGE else f"{self.grant_hours:g} h"
            out.write(f"[g] grants {new_grant(card, self.grant_hours).scope_text()}, for {lasts}\n")
        while True:
            out.write(
                f"Approve? [y]es / [g]rant for {self.grant_hours:g} h / [n]o / [q]uit the run: "
            )
            out.flush()
            line = self.stdin.readline()
            if not line:  # end of input: nobody is there any more
                return Decision(False, who, "no answer (end of input)", stop=True, principal=who)
            answer = line.strip().lower()
            if answer in ("y", "yes"):
                return Decision(True, who, "approved at the prompt", principal=who)
            if answer in ("g", "grant"):
                grant = new_grant(request.card, self.grant_hours)
                return Decision(
                    True,
                    who,
                    f"approved with a grant for {self.grant_hours:g} h",
                    grant=grant,
                    principal=who,
                )
            if answer in ("n", "no"):
                out.write("Reason (optional): ")
                out.flush()
                reason = self.stdin.readline().strip()
                return Decision(False, who, reason or "denied by the user", principal=who)
            if answer in ("q", "quit"):
                return Decision(
                    False, who, "denied by the user, who ended the run", stop=True, principal=who
                )

    async def elicit(
        self,
        server: str,
        message: str,
        schema: dict[str, Any] | None,
        *,
        context: dict[str, Any] | None = None,
    ) -> tuple[str, dict[str, Any] | None]:
        """An MCP server's elicitation, forwarded to the person at the terminal
        (``context``, the run asking, is plain to see there); Ctrl-C cancels it."""
        cancelled: tuple[str, dict[str, Any] | None] = ("cancel", None)
        return await self._interruptible(lambda: self._elicit(server, message, schema), cancelled)

    def _elicit(
        self, server: str, message: str, schema: dict[str, Any] | None
    ) -> tuple[str, dict[str, Any] | None]:
        out = self.stdout
        out.write(f"\n❓ MCP server {server} asks: {message}\n")
        out.write("Answer? [y]es / [n]o (decline) / [c]ancel: ")
        out.flush()
        answer = self.stdin.readline().strip().lower()
        if answer in ("c", "cancel") or (not answer and not schema):
            return "cancel", None
        if answer not in ("y", "yes"):
            return "decline", None
        from luminaguard.policy.inbox import answer_content, choices_of

        while True:
            fields: dict[str, str] = {}
            for name, prop in ((schema or {}).get("properties") or {}).items():
                default = prop.get("default")
                hint = f" [{default}]" if default is not None else ""
                choices = choices_of(prop.get("items") or prop)
                listed = f" ({'/'.join(map(str, choices))})" if choices else ""
                out.write(f"  {name}{listed}{hint}: ")
                out.flush()
                line = self.stdin.readline()
                if not line:  # end of input: nobody is there any more
                    return "cancel", None
                if line.rstrip("\n"):
                    fields[name] = line.rstrip("\n")
            try:
                return "accept", answer_content(schema or {}, fields)
            except ValueError as exc:
                out.write(f"  {exc}; once more (or Ctrl-D to cancel)\n")


def make_approver(
    name: str | None,
    principal: str | None,
    data_dir: Path,
    timeout_s: float,
    *,
    render: CardRenderer,
    out: TextIO | None = None,
) -> Approver:
    """The approver called ``name``: `prompt`, `inbox`, `none`, or (None) the prompt
    when stdin is a terminal, else nobody. The prompt shows cards with ``render``
    on ``out`` (default: standard output)."""
    if name is None:
        name = "prompt" if sys.stdin.isatty() else "none"
    if name == "prompt":
        return TerminalApprover(stdout=out, principal=principal, render=render)
    if name == "none":
        return Unattended()
    if name == "inbox":
        from luminaguard.policy.inbox import InboxApprover

        return InboxApprover(data_dir / "inbox.db", timeout_s=timeout_s)
    raise UsageError(f"unknown approver {name!r}; known approvers: prompt, inbox, none")
