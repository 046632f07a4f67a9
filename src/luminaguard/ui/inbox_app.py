"""`luminaguard approvals`: the Textual approval inbox.

One person serves several agents: the pending cards of every agent on this
machine, oldest first, with the agent and task beside each. Keys: `a` approve
once, `g` approve with a grant, `d` deny with a reason, `s` approve every card
of the same step, `n` / `p` next and previous card, `q` quit.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Footer, Header, Input, Label, ListItem, ListView, Static

from luminaguard.core.grant import GRANT_HOURS
from luminaguard.core.risk import ICONS
from luminaguard.policy.inbox import InboxStore, Pending
from luminaguard.ui.cards import card_renderable, header


class CardView(VerticalScroll):
    """The card, scrollable, with its position shown as [line/total]."""

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        self.app.call_later(getattr(self.app, "update_position", lambda: None))

    def position(self) -> str:
        total = max(1, self.virtual_size.height)
        bottom = min(total, round(self.scroll_y) + max(1, self.size.height))
        return f"[{bottom}/{total}]"


class InboxApp(App[None]):
    TITLE = "LuminaGuard approvals"
    CSS = """
    #side { width: 44; border-right: solid $primary; }
    #status { height: 1; padding: 0 1; }
    #card { height: 1fr; }
    #reason { display: none; }
    #reason.visible { display: block; }
    .empty { padding: 1 2; color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "approve", "Approve"),
        Binding("g", "grant", "Approve + grant"),
        Binding("d", "deny", "Deny"),
        Binding("s", "approve_step", "Approve step"),
        Binding("n", "next", "Next"),
        Binding("p", "previous", "Previous"),
        Binding("q", "quit", "Quit"),
        Binding("pagedown", "scroll_card(1)", "Scroll", show=False, priority=True),
        Binding("pageup", "scroll_card(-1)", "Scroll up", show=False, priority=True),
    ]

    def __init__(
        self,
        store: InboxStore,
        principal: str,
        *,
        grant_hours: float = GRANT_HOURS,
        refresh_s: float = 0.5,
    ) -> None:
        super().__init__()
        self.store = store
        self.principal = principal
        self.grant_hours = grant_hours
        self.refresh_s = refresh_s
        self.items: list[Pending] = []
        self.asked = 0  # MCP servers' questions waiting (answered from the CLI)
        self.index = 0
        self.decided: list[tuple[int, str]] = []

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            yield ListView(id="side")
            with Vertical():
                yield Label("", id="status")
                with CardView(id="card"):
                    yield Static("", id="card-body")
                yield Input(
                    placeholder="Reason for the denial, then Enter (Esc cancels)", id="reason"
                )
        yield Footer()

    def on_mount(self) -> None:
        self.reload()
        self.set_interval(self.refresh_s, self.reload)

    # --- state ------------------------------------------------------------

    @property
    def current(self) -> Pending | None:
        return self.items[self.index] if 0 <= self.index < len(self.items) else None

    def reload(self) -> None:
        current = self.current.id if self.current else None
        items = self.store.pending()
        asked = len(self.store.questions())
        if [i.id for i in items] == [i.id for i in self.items] and asked == self.asked:
            return
        self.items, self.asked = items, asked
        ids = [i.id for i in items]
        self.index = (
            ids.index(current) if current in ids else min(self.index, max(0, len(items) - 1))
        )
        side = self.query_one("#side", ListView)
        side.clear()
        for item in items:
            c = item.card
            side.append(
                ListItem(Label(f"{ICONS[c.risk]} {item.agent} · {c.tool}\n   {item.task[:38]}"))
            )
        self.show()

    def show(self) -> None:
        body = self.query_one("#card-body", Static)
        item = self.current
        asked = (
            f" · {self.asked} question(s) from MCP servers: luminaguard approvals questions"
            if self.asked
            else ""
        )
        if item is None:
            body.update("No pending approvals. Waiting for agents…")
            self.sub_title = "nothing pending" + asked
        else:
            body.update(card_renderable(item.card))
            self.sub_title = (
                f"{self.index + 1} of {len(self.items)} pending · you are {self.principal}{asked}"
            )
            self.query_one("#side", ListView).index = self.index
        self.query_one("#card", CardView).scroll_home(animate=False)
        self.update_position()
        # The card's height is known only after the next layout.
        self.call_after_refresh(self.update_position)

    def update_position(self) -> None:
        item = self.current
        status = self.query_one("#status", Label)
        if item is None:
            status.update("")
            return
        label = header(item.card)
        label.append(f"   {item.task[:50]}   step {item.step}   ")
        label.append(self.query_one("#card", CardView).position(), style="bold")
        status.update(label)

    def status_text(self) -> str:
        return str(self.query_one("#status", Label).render())

    # --- actions ----------------------------------------------------------

    def _decide(self, approved: bool, reason: str = "", grant_hours: float | None = None) -> None:
        item = self.current
        if item is None:
            return
        if self.store.decide(
            item.id, approved=approved, by=self.principal, reason=reason, grant_hours=grant_hours
        ):
            self.decided.append((item.id, "approved" if approved else "denied"))
        self.reload()

    def action_approve(self) -> None:
        self._decide(True, "approved in the inbox")

    def action_grant(self) -> None:
        self._decide(
            True, f"approved in the inbox with a grant for {self.grant_hours:g} h", self.grant_hours
        )

    def action_approve_step(self) -> None:
        item = self.current
        if item is None:
            return
        for related in self.store.related(item.id):
            if self.store.decide(
                related.id,
                approved=True,
                by=self.principal,
                reason="approved with its step in the inbox",
            ):
                self.decided.append((related.id, "approved"))
        self.reload()

    def action_deny(self) -> None:
        if self.current is None:
            return
        box = self.query_one("#reason", Input)
        box.add_class("visible")
        box.value = ""
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        box = self.query_one("#reason", Input)
        box.remove_class("visible")
        self._decide(False, event.value.strip() or "denied in the inbox")
        self.set_focus(None)

    def key_escape(self) -> None:
        box = self.query_one("#reason", Input)
        if box.has_class("visible"):
            box.remove_class("visible")
            self.set_focus(None)

    def action_scroll_card(self, direction: int) -> None:
        view = self.query_one("#card", CardView)
        if direction > 0:
            view.scroll_page_down(animate=False)
        else:
            view.scroll_page_up(animate=False)

    def action_next(self) -> None:
        if self.items:
            self.index = (self.index + 1) % len(self.items)
            self.show()

    def action_previous(self) -> None:
        if self.items:
            self.index = (self.index - 1) % len(self.items)
            self.show()

    def on_list_view_selected(self, event: ListView.Selected) -> None:
        if event.list_view.index is not None and event.list_view.index != self.index:
            self.index = event.list_view.index
            self.show()


def run_inbox(store: InboxStore, principal: str, **options: Any) -> list[tuple[int, str]]:
    app = InboxApp(store, principal, **options)
    app.run()
    return app.decided
