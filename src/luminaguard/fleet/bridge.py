"""Fleet cards in this machine's approval inbox.

The bridge puts the card each fleet run waits on into the local inbox (the
Textual inbox, `approvals list/decide`, and the service's web inbox all show
it), and carries a decision made there back to the run as its ``decide``
Update, where the workflow's validator checks it like any other: the card
must still be the one waiting, and the decider a principal the run's policy
lets approve it. It keeps no state of its own: the inbox item of a waiting
card is found again by the run's id, the card's hash and the call's id, so a
bridge that restarts neither posts a card twice nor loses a decision made
meanwhile, and a decision never goes to another call with the same card.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from temporalio.client import Client

from luminaguard.core.card import DiffCard
from luminaguard.errors import UsageError
from luminaguard.fleet.client import decide, is_fleet_run, policy_of, statuses
from luminaguard.fleet.data import Answer
from luminaguard.policy.inbox import InboxStore, Pending

POLL_S = 1.0


class InboxBridge:
    def __init__(self, client: Client, store: InboxStore) -> None:
        self.client, self.store = client, store
        self.relayed: set[int] = set()
        """Items carried to their run already (its status may lag a moment)."""
        self.runs: list[dict[str, Any]] = []
        """The fleet's running runs as the last pass saw them (the service's page)."""
        self.fleet_runs: dict[str, bool] = {}
        """Whether a run id is a fleet run's (else a local run's), once asked."""

    async def sync(self) -> list[str]:
        """One pass: post new waiting cards, relay decisions, withdraw cards
        no run waits on any more. What happened, a line each."""
        said: list[str] = []
        runs = self.runs = await statuses(self.client, running=True)
        waits: dict[str, dict[str, Any]] = {
            r["id"]: r["waiting"] for r in runs if r.get("status") == "waiting" and r.get("waiting")
        }
        for run_id, waiting in waits.items():
            item = self.store.find(run_id, waiting["card_hash"], waiting["call_id"])
            if item is None or item.status == "expired":  # new, or withdrawn and back
                said.append(self._post(run_id, waiting))
            elif item.status in ("approved", "denied") and item.id not in self.relayed:
                said.append(await self._relay(run_id, waiting, item))
        self.fleet_runs.update((r["id"], True) for r in runs)
        unknown = {r["id"] for r in runs if r.get("unanswered")}  # no worker to ask: kept
        for item in self.store.pending():
            if item.run_id in unknown:
                continue
            now = waits.get(item.run_id)
            if now is not None and _waited_on(item.card, now):
                continue
            if item.run_id not in self.fleet_runs:
                self.fleet_runs[item.run_id] = await is_fleet_run(self.client, item.run_id)
            if self.fleet_runs[item.run_id]:  # decided elsewhere, or the run moved on or ended
                self.store.expire(item.id)
                said.append(f"withdrew #{item.id}: run {item.run_id} no longer waits on it")
        return [s for s in said if s]

    def _post(self, run_id: str, waiting: dict[str, Any]) -> str:
        try:
            card = DiffCard.from_dict(waiting["card"])
        except (KeyError, TypeError, ValueError) as exc:
            return f"run {run_id}: its card cannot be shown in the inbox ({exc}); use `luminaguard fleet status {run_id}`"
        if not _waited_on(card, waiting) or card.context.get("run_id") != run_id:
            return f"run {run_id}: its card does not match what the run waits on; not posted"
        item_id = self.store.put(card)
        return f"posted #{item_id}: run {run_id} waits on call {waiting['call_id']} ({card.tool}, {card.risk.label})"

    async def _relay(self, run_id: str, waiting: dict[str, Any], item: Pending) -> str:
        from luminaguard.policy.permissions import acting_principal
        from luminaguard.policy.policyfile import parse_policy

        approved = item.status == "approved"
        try:
            text = await policy_of(self.client, run_id)
            principals = parse_policy(text, "the run's policy").principals if text else {}
            who = acting_principal(item.decided_by, principals)
            await decide(
                self.client,
                run_id,
                Answer(
                    call_id=waiting["call_id"],
                    approved=approved,
                    by=f"{who} (fleet inbox)",
                    reason=item.reason or ("approved" if approved else "denied") + " in the inbox",
                    principal=who,
                    card_hash=item.card.hash,
                    grant_hours=(item.grant_hours or 0.0) if approved else 0.0,
                ),
            )
        except UsageError as exc:
            # Refused (by the run's policy, or the card moved on): ask again.
            again = self.store.put(item.card)
            return f"run {run_id}: #{item.id} was refused ({exc}); posted again as #{again}"
        self.relayed.add(item.id)
        return f"{item.status} #{item.id} in run {run_id} (as {who})"


def _waited_on(card: DiffCard, waiting: dict[str, Any]) -> bool:
    """Whether ``card`` is the one ``waiting`` names: its hash, for its call
    (two calls can have cards of the same content)."""
    return bool(
        card.hash == waiting["card_hash"] and card.context.get("call_id") == waiting["call_id"]
    )


async def bridge(
    client: Client,
    store: InboxStore,
    say: Callable[[str], None],
    seen: Callable[[list[dict[str, Any]]], None] = lambda runs: None,
) -> None:
    """Keep the inbox and the fleet in step until cancelled, telling ``seen``
    the running runs after each pass; a pass that fails (the service
    unreachable) is said and tried again."""
    bridge = InboxBridge(client, store)
    while True:
        try:
            for line in await bridge.sync():
                say(line)
            seen(bridge.runs)
        except Exception as exc:  # the next pass tries again; the error is said
            say(f"fleet inbox: {exc}")
        await asyncio.sleep(POLL_S)
