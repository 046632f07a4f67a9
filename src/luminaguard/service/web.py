"""The local service's web side, on 127.0.0.1 only: one inbox for every
agent's approvals, the runs (a running one streamed), the swarms, charts of
the providers and pools, and ``/metrics``.

Who may use it: whoever holds the per-install token (``token``: 0600 in the
data dir, printed by `luminaguard serve` and `luminaguard open`). The page is
opened once with ``/?token=T``; that sets an HttpOnly, SameSite=Strict cookie
and redirects to a URL without the token. Without the token: 401; with a wrong
one: 403. ``/metrics`` takes it as ``Authorization: Bearer T``.

Every state-changing request (a POST) must carry the CSRF token of the page
(derived from the install token, so it is never in a URL) and, when the
browser sends one, an ``Origin`` of this very service. The Content-Security-Policy
allows no script but our own file (``/live.js``), and nothing from a card, a
journal, a swarm or a provider is HTML: every string is made inert and escaped
as it is written out (``card_html`` for cards).

The store is the existing SQLite inbox, so a decision made here shows at once
in `luminaguard approvals` and in the Textual view, and the reverse.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import html
import http.server
import json
import os
import secrets
import threading
import time
import urllib.parse
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from luminaguard.core.risk import ICONS
from luminaguard.core.text import inert
from luminaguard.service.card_html import CSS as CARD_CSS
from luminaguard.service.card_html import MODES as DIFF_MODES
from luminaguard.service.charts import PoolHistory, provider_charts
from luminaguard.service.pools import pool_prometheus
from luminaguard.store import PRIVATE_FILE, private_dir

COOKIE = "luminaguard_token"
CSP = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; "
    "img-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
LIVE_JS = """\
// A page follows what it shows. A run's page is sent each journal record as
// it lands (a "record" event: set as text, never as HTML); any other change
// (a card comes or goes, a run ends, a swarm moves) reloads the page, unless
// the person is typing a reason or sending a decision. Served as a file: the
// CSP allows no inline script.
const seen = document.documentElement.dataset.version || "";
const events = new EventSource(
  "/events?page=" + encodeURIComponent(location.pathname) + "&seen=" + encodeURIComponent(seen));
let submitting = false;
events.onmessage = () => {
  const typing = document.activeElement && document.activeElement.tagName === "INPUT";
  if (!typing && !submitting) location.reload();
};
// A decision being sent is never cut off by a reload: the page it leads to
// follows on from there.
document.addEventListener("submit", () => {
  submitting = true;
  events.close();
});
events.addEventListener("record", (event) => {
  const rec = JSON.parse(event.data);
  const row = document.createElement("tr");
  for (const key of ["seq", "type", "text"]) {
    const cell = document.createElement("td");
    const text = document.createElement(key === "text" ? "pre" : "span");
    text.textContent = rec[key];
    cell.appendChild(text);
    row.appendChild(cell);
  }
  document.getElementById("journal").appendChild(row);
});
"""
WATCH_S = 0.1
"""How often /events looks at the inbox for a change."""
KEEPALIVE_S = 15.0
COLOURS = {"green": "#1a7f37", "yellow": "#9a6700", "orange": "#bc4c00", "red": "#cf222e"}


def token(data_dir: Path) -> str:
    """This install's token: made once (0600, created so), then read."""
    path = data_dir / "service-token"
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    private_dir(data_dir)
    value = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE)
    except FileExistsError:  # another process made it first
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(value + "\n")
    return value


def csrf_for(secret: str) -> str:
    return hmac.new(secret.encode(), b"csrf", hashlib.sha256).hexdigest()


class WebService:
    """The HTTP server: `/` (the inbox), `POST /decide`, `/metrics`, `/healthz`."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int = 0,
        principal: str,
        pools: Callable[[], list[dict[str, Any]]] | None = None,
        fleet: Callable[[], list[dict[str, Any]]] | None = None,
        fleet_address: str = "",
    ) -> None:
        """``fleet``: the fleet's running runs, when this service bridges a
        fleet's cards (``fleet.inbox``)."""
        from luminaguard.policy.inbox import InboxStore

        self.data_dir = data_dir
        self.secret = token(data_dir)
        self.csrf = csrf_for(self.secret)
        self.principal = principal
        self.pools = pools or list
        self.fleet, self.fleet_address = fleet, fleet_address
        self.history = PoolHistory(self.pools)
        self.store = InboxStore(data_dir / "inbox.db")
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.started = time.time()
        handler = type("Handler", (_Handler,), {"service": self})
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.origin}/?token={self.secret}"

    def serve_forever(self) -> None:
        threading.Thread(
            target=self.history.run, args=(self.stopping,), name="lg-pool-history", daemon=True
        ).start()
        self.httpd.serve_forever(poll_interval=0.2)

    def shutdown(self) -> None:
        self.stopping.set()  # ends the /events streams
        self.httpd.shutdown()
        self.httpd.server_close()
        with self.lock:
            self.store.close()

    # --- what the handler asks --------------------------------------------

    def snapshot(self) -> tuple[tuple[int, int, int], list[Any], list[Any]]:
        with self.lock:
            return self.store.snapshot()

    def answer(self, item_id: int, action: str, fields: dict[str, str]) -> str | None:
        """Answer a question: None when done, else what is wrong (one sentence)."""
        from luminaguard.policy.inbox import answer_content

        with self.lock:
            question = self.store.question(item_id)
            if question is None or question.status != "pending":
                return f"no question {item_id} waiting"
            content = None
            if action == "accept":
                try:
                    content = answer_content(question.schema, fields)
                except ValueError as exc:
                    return str(exc)
            self.store.answer(item_id, action=action, content=content, by=self.principal)
            return None

    def version(self, page: str = "/", index: Any = None) -> tuple[int, ...]:
        """What ``page`` shows, in a few numbers: for the inbox, they change
        when a card or a question comes or goes; for a run, when its journal
        grows (its size) or it ends; for the swarms, when an item or an agent
        changes state. ``index``: an open run index to ask (an event stream
        keeps one, rather than opening it at every look)."""
        if page == "/swarms":
            state: list[Any] = [
                (str(repo), s["items_detail"], _still(s["agents"])) for repo, s in self.swarms()
            ]
            state += [_still_run(r) for r in (self.fleet() if self.fleet else [])]
            return (zlib.crc32(json.dumps(state, default=str).encode()),)
        if not page.startswith("/runs/"):
            with self.lock:
                return self.store.waiting()
        if index is None:
            with self.run_index() as index:
                return self.version(page, index)
        run = index.get(urllib.parse.unquote(page[len("/runs/") :]))
        if run is None:
            return (0,)
        try:
            return (Path(run["path"]).stat().st_size, 1 if run["outcome"] else 0)
        except OSError:
            return (0,)

    def swarms(self) -> list[tuple[Path, dict[str, Any]]]:
        """Each of this user's swarms (``swarm.status.known``) and its status."""
        from luminaguard.errors import LuminaGuardError
        from luminaguard.swarm import status
        from luminaguard.swarm.queue import Queue, queue_path

        out = []
        for repo in status.known(self.data_dir):
            try:
                queue = Queue(queue_path(repo))
            except LuminaGuardError:
                continue  # gone, or not readable: not shown
            try:
                out.append((repo, status.status(queue, self.data_dir)))
            finally:
                queue.close()
        return out

    @contextlib.contextmanager
    def run_index(self) -> Iterator[Any]:
        from luminaguard.audit.index import RunIndex

        index = RunIndex(self.data_dir / "index.db")
        try:
            yield index
        finally:
            index.close()

    def decide(
        self, item_id: int, *, approved: bool, reason: str, grant_hours: float | None
    ) -> bool:
        with self.lock:
            return self.store.decide(
                item_id,
                approved=approved,
                by=self.principal,
                reason=reason,
                grant_hours=grant_hours,
            )

    def metrics(self) -> str:
        from luminaguard.llm.metrics import ProviderMetrics
        from luminaguard.metrics import prometheus_text

        store = ProviderMetrics(self.data_dir / "metrics.db")
        try:
            text = prometheus_text(store.rows())
        finally:
            store.close()
        with self.lock:
            cards, _, questions = self.store.waiting()
        lines = [
            "# HELP luminaguard_approvals_pending Cards waiting for a decision in the inbox.",
            "# TYPE luminaguard_approvals_pending gauge",
            f"luminaguard_approvals_pending {cards}",
            "# HELP luminaguard_questions_pending MCP servers' questions waiting for an answer.",
            "# TYPE luminaguard_questions_pending gauge",
            f"luminaguard_questions_pending {questions}",
        ]
        lines += [
            "# HELP luminaguard_runs Runs by outcome (running and interrupted ones included).",
            "# TYPE luminaguard_runs gauge",
            *(
                f"luminaguard_runs{{outcome={json.dumps(k)}}} {n}"
                for k, n in self.runs_by_outcome()
            ),
        ]
        lines += pool_prometheus(self.pools())
        return text + "\n".join(lines) + "\n"

    def runs_by_outcome(self) -> list[tuple[str, int]]:
        """How many runs ended each way, and how many run or were interrupted now."""
        from luminaguard.audit.run import status_of

        with self.run_index() as index:
            runs = index.list()
        counts: dict[str, int] = {}
        for run in runs:
            status = status_of(self.data_dir, run)
            counts[status] = counts.get(status, 0) + 1
        return sorted(counts.items())


class _Handler(http.server.BaseHTTPRequestHandler):
    service: WebService
    server_version = "luminaguard"
    sys_version = ""

    def log_message(self, *args: object) -> None:  # no access log on stderr
        pass

    # --- authentication ---------------------------------------------------

    def _cookie_token(self) -> str | None:
        for part in (self.headers.get("Cookie") or "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE:
                return value
        return None

    def _check(self, given: str | None) -> bool:
        """401 without a token, 403 with a wrong one; True when it is right."""
        if not given:
            self._plain(401, "this LuminaGuard service needs its token: luminaguard open\n")
            return False
        if not hmac.compare_digest(given.encode(), self.service.secret.encode()):
            self._plain(403, "wrong token\n")
            return False
        return True

    # --- routes ----------------------------------------------------------

    def _our_host(self) -> bool:
        """A request for this service by name: a page elsewhere whose name
        was pointed at 127.0.0.1 (DNS rebinding) sends its own name."""
        port = self.service.port
        if self.headers.get("Host") in (f"127.0.0.1:{port}", f"localhost:{port}"):
            return True
        self._plain(421, "not this service's address\n")
        return False

    def do_GET(self) -> None:
        if not self._our_host():
            return
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        if url.path == "/healthz":
            self._plain(200, "ok\n")
        elif url.path == "/live.js":
            self._send(200, LIVE_JS, "text/javascript")
        elif url.path == "/events":
            if self._check(self._cookie_token()):
                self._events(query.get("page", ["/"])[0], query.get("seen", [""])[0])
        elif url.path == "/metrics":
            auth = self.headers.get("Authorization") or ""
            bearer = auth[7:] if auth.startswith("Bearer ") else None
            if self._check(bearer):
                self._send(200, self.service.metrics(), "text/plain; version=0.0.4")
        elif url.path in ("/swarms", "/stats"):
            if self._check(self._cookie_token()):
                if url.path == "/swarms":
                    self._send(200, self._swarms_page(), "text/html")
                    return
                try:
                    hours = float(query.get("hours", ["24"])[0])
                except ValueError:
                    hours = 24.0
                if not 0 < hours <= 24 * 366:
                    hours = 24.0
                self._send(200, self._stats_page(hours), "text/html")
        elif url.path == "/runs" or url.path.startswith("/runs/"):
            if self._check(self._cookie_token()):
                run_id = (
                    urllib.parse.unquote(url.path[len("/runs/") :]) if url.path != "/runs" else ""
                )
                page = self._run_page(run_id) if run_id else self._runs_page()
                if page is None:
                    self._plain(404, "no such run\n")
                else:
                    self._send(200, page, "text/html")
        elif url.path == "/":
            if "token" in query:
                # Into a cookie, and out of the address bar and the history.
                if self._check(query["token"][0]):
                    cookie = f"{COOKIE}={self.service.secret}; HttpOnly; SameSite=Strict; Path=/"
                    self._redirect("/", cookie=cookie)
                return
            if self._check(self._cookie_token()):
                mode = query.get("diff", ["unified"])[0]
                mode = mode if mode in DIFF_MODES else "unified"
                self._send(200, self._inbox_page(query.get("done", [""])[0], mode), "text/html")
        else:
            self._plain(404, "not found\n")

    def do_POST(self) -> None:
        if not self._our_host():
            return
        url = urllib.parse.urlsplit(self.path)
        if url.path not in ("/decide", "/answer"):
            self._plain(404, "not found\n")
            return
        if not self._check(self._cookie_token()):
            return
        origin = self.headers.get("Origin")
        if origin is not None and origin != self.service.origin:
            self._plain(403, "a request from another site\n")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > 64 * 1024:
            self._plain(413, "too large\n")
            return
        form = urllib.parse.parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        field = {k: v[0] for k, v in form.items()}
        if not hmac.compare_digest(field.get("csrf", "").encode(), self.service.csrf.encode()):
            self._plain(403, "missing or wrong CSRF token\n")
            return
        if url.path == "/answer":
            self._answer(field)
            return
        try:
            item = int(field.get("id", ""))
            hours = float(field["grant_hours"]) if field.get("grant_hours") else None
        except ValueError:
            self._plain(400, "bad id or grant hours\n")
            return
        verdict = field.get("verdict")
        if verdict not in ("approve", "deny") or (hours is not None and verdict != "approve"):
            self._plain(400, "verdict is approve or deny (a grant goes with approve)\n")
            return
        ok = self.service.decide(
            item,
            approved=verdict == "approve",
            reason=field.get("reason", "")[:500],
            grant_hours=hours,
        )
        done = f"{item}-{'approved' if verdict == 'approve' else 'denied'}" if ok else "gone"
        self._redirect(f"/?done={urllib.parse.quote(done)}")

    def _answer(self, field: dict[str, str]) -> None:
        """An MCP server's question answered from the page: the form's fields
        are the ``f.NAME`` entries, checked against the server's schema."""
        action = field.get("action", "")
        if action not in ("accept", "decline", "cancel") or not field.get("id", "").isdigit():
            self._plain(400, "an answer needs an id and accept, decline or cancel\n")
            return
        given = {k[2:]: v for k, v in field.items() if k.startswith("f.") and v != ""}
        # A checkbox left unticked sends nothing: it is a no.
        for name in field.get("booleans", "").split(","):
            if name:
                given[name] = "yes" if given.get(name) else "no"
        wrong = self.service.answer(int(field["id"]), action, given)
        if wrong is not None:
            self._plain(400, wrong + "\n")
            return
        self._redirect(f"/?done={urllib.parse.quote('question-' + action)}")

    def _events(self, page: str, rendered: str) -> None:
        """Server-sent events until the page goes away: for a run's page,
        each record its journal gains (``record``) and a ``changed`` when the
        run ends; for any other page, a ``changed`` each time what it shows
        changes (from what it showed when it was ``rendered``)."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self._security_headers()
        self.end_headers()
        with self.service.run_index() as index:
            if page.startswith("/runs/"):
                self._follow_run(urllib.parse.unquote(page[len("/runs/") :]), index, rendered)
                return
            seen = self.service.version(page, index)
            if rendered and rendered != _version_text(seen):
                seen = ()  # it changed while the page loaded: say so at once
            self._follow(page, index, seen)

    def _follow_run(self, run_id: str, index: Any, rendered: str) -> None:
        """A run's journal from the byte the page was rendered up to
        (``rendered``: its version, the journal's size first), record by record."""
        from luminaguard.service.journal_view import records_between, row

        run = index.get(run_id)
        if run is None:
            return
        path = Path(run["path"])
        offset = int(rendered.split(".")[0]) if rendered.split(".")[0].isdigit() else 0
        quiet = time.monotonic()
        try:
            while not self.service.stopping.is_set():
                # Looked at before the journal is read: every record written
                # before the run ended is sent before the page is told it did.
                ended = bool((index.get(run_id) or {}).get("outcome"))
                records, offset = records_between(path, offset)
                for rec in records:
                    data = json.dumps(row(rec), ensure_ascii=False)
                    self.wfile.write(f"event: record\ndata: {data}\n\n".encode())
                if records:
                    self.wfile.flush()
                    quiet = time.monotonic()
                if ended:
                    self.wfile.write(b"data: changed\n\n")  # the page shows its verdict
                    self.wfile.flush()
                    return
                if time.monotonic() - quiet > KEEPALIVE_S:
                    self.wfile.write(b": still here\n\n")
                    self.wfile.flush()
                    quiet = time.monotonic()
                time.sleep(WATCH_S)
        except OSError:
            pass  # the page went away

    def _follow(self, page: str, index: Any, seen: tuple[int, ...]) -> None:
        quiet = time.monotonic()
        try:
            while not self.service.stopping.is_set():
                time.sleep(WATCH_S)
                now = self.service.version(page, index)
                if now != seen:
                    seen = now
                    self.wfile.write(b"data: changed\n\n")
                    self.wfile.flush()
                    quiet = time.monotonic()
                elif time.monotonic() - quiet > KEEPALIVE_S:
                    self.wfile.write(b": still here\n\n")
                    self.wfile.flush()
                    quiet = time.monotonic()
        except OSError:
            pass  # the page went away

    # --- the pages ---------------------------------------------------------

    def _head(self, title: str, version: tuple[int, ...] = ()) -> list[str]:
        """The top of a page. ``version`` is what the page shows as it was
        *before* it was rendered: its event stream starts from there, so a
        change that lands while the page loads is not missed."""
        return [
            f"<!doctype html><html data-version='{_version_text(version)}'>",
            "<head><meta charset='utf-8'>",
            "<meta name='viewport' content='width=device-width, initial-scale=1'>",
            f"<title>{html.escape(title)}</title><style>",
            "body{font-family:system-ui,sans-serif;margin:0 auto;max-width:60rem;padding:.75rem}",
            "pre{white-space:pre-wrap;overflow-wrap:anywhere;font-size:.8rem;background:#f6f8fa;"
            "padding:.5rem;border-radius:6px}",
            "td{padding:.15rem .5rem;vertical-align:top}nav a{margin-right:1rem}",
            ".charts{display:flex;flex-wrap:wrap;gap:.75rem}.chart{margin:0;flex:1 1 16rem}",
            "figcaption,.legend{font-size:.8rem}",
            CARD_CSS,
            "</style></head><body><nav><a href='/'>Inbox</a><a href='/runs'>Runs</a>"
            "<a href='/swarms'>Swarms</a><a href='/stats'>Metrics</a></nav>",
        ]

    def _swarms_page(self) -> str:
        """Every swarm of this user: its items, and its agents with what each
        is doing and the approvals it waits for."""
        e = html.escape
        version = self.service.version("/swarms")
        swarms = self.service.swarms()
        parts = [
            *self._head("LuminaGuard swarms", version),
            "<script src='/live.js' defer></script>",
            f"<h1>Swarms ({len(swarms)})</h1>",
        ]
        if not swarms:
            parts.append(
                "<p>No swarm yet: <code>luminaguard swarm add TASK</code> in a repository.</p>"
            )
        if self.service.fleet is not None:
            parts += self._fleet_section(self.service.fleet())
        for repo, st in swarms:
            c = st["items"]
            parts += [
                f"<section><h2>{e(str(repo))}</h2>",
                f"<p>{c['queued']} queued · {c['running']} running · {c['done']} done · "
                f"{c['failed']} failed</p>",
                "<table><tr><th>agent</th><th>state</th><th>item</th><th>run</th>"
                "<th>beat</th><th>doing</th></tr>",
            ]
            for a in st["agents"]:
                run = a["run_id"] or ""
                link = (
                    f"<a href='{e('/runs/' + urllib.parse.quote(run, safe=''))}'>{e(run)}</a>"
                    if run
                    else "–"
                )
                waiting = (
                    f" · <a href='/'>{a['pending_approvals']} approval(s) waiting</a>"
                    if a["pending_approvals"]
                    else ""
                )
                parts.append(
                    f"<tr><td>{e(str(a['id']))}</td><td>{e(str(a['state']))}</td>"
                    f"<td>{e(str(a['item'] or '–'))}</td><td>{link}</td>"
                    f"<td>{float(a['heartbeat_age_s']):.0f} s ago</td>"
                    f"<td>{e(inert(str(a['last_action'] or ''))[:200])}{waiting}</td></tr>"
                )
            parts.append("</table><details><summary>items</summary><table>")
            for i in st["items_detail"]:
                parts.append(
                    f"<tr><td>{e(str(i['id']))}</td><td>{e(str(i['state']))}</td>"
                    f"<td>attempts {int(i['attempts'])}</td><td>{e(str(i['branch']))}</td>"
                    f"<td>{e(inert(str(i['task']))[:200])}</td></tr>"
                )
            parts.append("</table></details></section>")
        parts.append("</body></html>")
        return "".join(parts)

    def _fleet_section(self, runs: list[dict[str, Any]]) -> list[str]:
        """The fleet's running runs: each one's state, steps, worker, and the
        call it waits on (its card is in the inbox)."""
        e = html.escape
        parts = [
            f"<section><h2>Fleet at {e(self.service.fleet_address)} ({len(runs)} running)</h2>",
            "<table><tr><th>run</th><th>state</th><th>steps</th><th>worker</th>"
            "<th>waits on</th></tr>",
        ]
        for r in runs:
            w = r.get("waiting")
            waits = (
                f"<a href='/'>{e(inert(str(w.get('tool', ''))))} ({e(str(w.get('risk', '')))}),"
                f" call {e(inert(str(w.get('call_id', ''))))}</a>"
                if isinstance(w, dict)
                else "–"
            )
            parts.append(
                f"<tr><td>{e(inert(str(r.get('id', ''))))}</td>"
                f"<td>{e(inert(str(r.get('status', ''))))}</td>"
                f"<td>{e(str(r.get('steps', 0)))}</td>"
                f"<td>{e(inert(str(r.get('worker') or '–')))}</td><td>{waits}</td></tr>"
            )
        parts.append("</table></section>")
        return parts

    def _stats_page(self, hours: float) -> str:
        """Providers' latency, success and cost over the last ``hours``, and
        the warm pools over the last hour, as small charts."""
        from luminaguard.llm.metrics import ProviderMetrics

        now = time.time()
        since = now - hours * 3600
        store = ProviderMetrics(self.service.data_dir / "metrics.db")
        try:
            rows = store.rows(since=since, until=now)
        finally:
            store.close()
        spans = " · ".join(
            f"<a href='/stats?hours={h:g}'>{label}</a>"
            for h, label in ((1, "1 h"), (24, "24 h"), (168, "7 days"))
        )
        providers = provider_charts(rows, since, now)
        pools = self.service.history.charts()
        return "".join(
            [
                *self._head("LuminaGuard metrics"),
                f"<h1>Metrics</h1><p>providers over the last {hours:g} h: {spans} · "
                "Prometheus text at <code>/metrics</code></p>",
                "<h2>Providers</h2>",
                *(providers or ["<p>No model requests in this window.</p>"]),
                f"<h2>Warm pools <small>(sampled every {self.service.history.EVERY_S:g} s, "
                "the last hour)</small></h2>",
                *(pools or ["<p>No pool yet: they are made at the first command.</p>"]),
                "</body></html>",
            ]
        )

    def _runs_page(self) -> str:
        """Every run, newest first, with its status."""
        from luminaguard.audit.run import status_of

        e = html.escape
        with self.service.run_index() as index:
            runs = list(reversed(index.list()))[:200]
        parts = [*self._head("LuminaGuard runs"), f"<h1>Runs ({len(runs)} newest)</h1><table>"]
        for run in runs:
            status = status_of(self.service.data_dir, run)
            link = "/runs/" + urllib.parse.quote(str(run["id"]), safe="")
            parts.append(
                f"<tr><td><a href='{e(link)}'>{e(str(run['id']))}</a></td>"
                f"<td>{e(str(run['started'])[:19])}</td><td>{e(status)}</td>"
                f"<td>{e(str(run['task'])[:120])}</td></tr>"
            )
        parts.append("</table></body></html>")
        return "".join(parts)

    def _run_page(self, run_id: str) -> str | None:
        """One run's journal, record by record, and whether it verifies. The
        journal's path comes from the index, never from the address."""
        from luminaguard.audit.journal import verify
        from luminaguard.service.journal_view import records_between, row

        with self.service.run_index() as index:
            run = index.get(run_id)
            version = self.service.version(f"/runs/{run_id}", index)
        if run is None:
            return None
        path = Path(run["path"])
        problems = [str(p) for p in verify(path, run["records"], run["head"])]
        e = html.escape
        verdict = (
            "<p>✔ the journal verifies (hash chain and signatures)</p>"
            if not problems
            else "<p>✘ the journal does not verify:</p><pre>" + e("\n".join(problems)) + "</pre>"
        )
        live = ["<script src='/live.js' defer></script>"] if not run["outcome"] else []
        parts = [
            *self._head(f"run {run_id}", version),
            *live,
            f"<h1>Run {e(run_id)}</h1><p>{e(str(run['task'])[:500])}</p>",
            f"<p>started {e(str(run['started'])[:19])} · outcome {e(str(run['outcome'] or 'running'))}</p>",
            verdict,
            "<table id='journal'>",
        ]
        for rec in records_between(path, 0, version[0])[0]:
            r = row(rec)
            parts.append(
                f"<tr><td><span>{e(r['seq'])}</span></td><td><span>{e(r['type'])}</span></td>"
                f"<td><pre>{e(r['text'])}</pre></td></tr>"
            )
        parts.append("</table></body></html>")
        return "".join(parts)

    def _inbox_page(self, done: str, diff_mode: str = "unified") -> str:
        from luminaguard.core.grant import GRANT_HOURS, new_grant
        from luminaguard.service.card_html import card_html
        from luminaguard.ui.cards import KIND_LABELS

        e = html.escape
        version, items, questions = self.service.snapshot()
        parts = [
            *self._head("LuminaGuard inbox", version),
            "<script src='/live.js' defer></script><style>",
            ".card{border-left:6px solid;padding:.25rem .75rem;margin:1rem 0}",
            "form{display:inline-block;margin:.25rem .5rem .25rem 0}",
            "input[type=text]{width:12rem}button{font-size:1rem;padding:.4rem .9rem}",
            "</style>",
            f"<h1>Approvals waiting: {len(items)}</h1>",
            f"<p>Questions from MCP servers: {len(questions)}</p>" if questions else "",
            "<p>diffs: "
            + " · ".join(
                f"<strong>{label}</strong>"
                if mode == diff_mode
                else f"<a href='/?diff={mode}'>{label}</a>"
                for mode, label in (("unified", "unified"), ("split", "side by side"))
            )
            + "</p>",
        ]
        if done:
            parts.append(f"<p role='status'>{e(done)}</p>")
        for q in questions:
            parts += self._question_form(q)
        for item in items:
            level = item.card.risk.label
            decide = self._form("/decide", item.id)
            grant = new_grant(item.card, GRANT_HOURS).scope_text()
            parts += [
                f"<section class='card' id='card-{item.id}' style='border-color:{COLOURS[level]}'>",
                f"<h2>{ICONS[item.card.risk]} #{item.id} {e(level.upper())} · "
                f"{e(KIND_LABELS.get(item.card.kind, item.card.kind))} · {e(item.card.tool)}</h2>",
                f"<p>agent {e(item.agent)} · run {e(item.run_id)} · step {item.step}<br>"
                f"task: {e(item.task[:200])}</p>",
                card_html(item.card, mode=diff_mode),
                decide,
                "<button name='verdict' value='approve'>Approve</button></form>",
                decide,
                "<input type='hidden' name='verdict' value='approve'>",
                f"<input type='hidden' name='grant_hours' value='{GRANT_HOURS:g}'>",
                f"<button>Approve, and grant {e(grant)} for {GRANT_HOURS:g} h</button></form>",
                decide,
                "<input type='text' name='reason' placeholder='why (optional)'>",
                "<button name='verdict' value='deny'>Deny</button></form>",
                "</section>",
            ]
        if not items:
            parts.append("<p>Nothing waits. New cards appear here as they come.</p>")
        parts.append("</body></html>")
        return "".join(parts)

    def _form(self, action: str, item_id: int) -> str:
        """The start of a form that changes something: it carries the CSRF token."""
        return (
            f"<form method='post' action='{action}'>"
            f"<input type='hidden' name='csrf' value='{html.escape(self.service.csrf)}'>"
            f"<input type='hidden' name='id' value='{item_id}'>"
        )

    def _question_form(self, q: Any) -> list[str]:
        """An MCP server's question as a form: one input per field of its schema."""
        e = html.escape
        props: dict[str, Any] = q.schema.get("properties") or {}
        required = set(q.schema.get("required") or [])
        booleans = [n for n, p in props.items() if p.get("type") == "boolean"]
        out = [
            f"<section class='question' id='question-{q.id}'>",
            f"<h2>❓ #{q.id} {e(q.server)} asks</h2><p>agent {e(q.agent)} · run {e(q.run_id)}</p>",
            f"<pre>{e(inert(q.message))}</pre>",
            self._form("/answer", q.id),
            f"<input type='hidden' name='booleans' value='{e(','.join(booleans))}'>",
        ]
        for name, prop in props.items():
            label = e(str(prop.get("title") or name)) + (" *" if name in required else "")
            about = (
                f" <small>{e(str(prop.get('description', '')))}</small>"
                if prop.get("description")
                else ""
            )
            field = f"f.{e(name)}"
            if prop.get("type") == "boolean":
                widget = f"<input type='checkbox' name='{field}' value='yes'>"
            elif prop.get("enum"):
                options = "".join(
                    f"<option value='{e(str(v))}'>{e(str(v))}</option>" for v in prop["enum"]
                )
                widget = f"<select name='{field}'><option value=''></option>{options}</select>"
            else:
                widget = f"<input type='text' name='{field}'>"
            out.append(f"<p><label>{label} {widget}</label>{about}</p>")
        out += [
            "<button name='action' value='accept'>Answer</button>",
            "<button name='action' value='decline'>Decline</button>",
            "<button name='action' value='cancel'>Cancel</button></form></section>",
        ]
        return out

    # --- responses --------------------------------------------------------

    def _security_headers(self) -> None:
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        # same-origin, not no-referrer: with no-referrer a browser sends
        # `Origin: null` on the page's own POSTs, which the Origin check refuses.
        self.send_header("Referrer-Policy", "same-origin")
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Frame-Options", "DENY")

    def _redirect(self, location: str, *, cookie: str | None = None) -> None:
        self.send_response(303)
        if cookie is not None:
            self.send_header("Set-Cookie", cookie)
        self.send_header("Location", location)
        self._security_headers()
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send(self, status: int, body: str, kind: str) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", f"{kind}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self._security_headers()
        self.end_headers()
        self.wfile.write(data)

    def _plain(self, status: int, text: str) -> None:
        self._send(status, text, "text/plain")


def _still_run(run: dict[str, Any]) -> tuple[Any, ...]:
    """What of a fleet run shows on the page (its steps and state, not a clock)."""
    waiting = run.get("waiting") or {}
    return (run.get("id"), run.get("status"), run.get("steps"), waiting.get("call_id"))


def _still(agents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Agents without their heartbeat's age (which changes every look)."""
    return [{k: v for k, v in a.items() if k != "heartbeat_age_s"} for a in agents]


def _version_text(version: tuple[int, ...]) -> str:
    return ".".join(str(n) for n in version)


def write_state(data_dir: Path, service: WebService) -> Path:
    """``service.json`` (0600): where the running service is, for --status/--stop/open."""
    path = data_dir / "service.json"
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, PRIVATE_FILE)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"pid": os.getpid(), "port": service.port, "started": service.started}, f)
    tmp.replace(path)
    return path


def read_state(data_dir: Path) -> dict[str, Any] | None:
    """The running service's pid and port, or None when none runs (a stale file is removed)."""
    path = data_dir / "service.json"
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        pid = int(state["pid"])
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError, TypeError):
        path.unlink(missing_ok=True)
        return None
    return dict(state)
