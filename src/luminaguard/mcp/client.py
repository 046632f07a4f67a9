"""One MCP server, connected on the official SDK, with what the SDK leaves to us.

What it adds: servers from config, stdio servers in the sandbox, OAuth for
HTTP servers (mcp/oauth.py), the legacy HTTP+SSE fallback, paginated lists,
per-call timeouts that progress notifications reset (with an overall maximum,
the call cancelled on timeout), bounded waits everywhere (a server that never
answers `initialize`, or dies mid-call, gives an error, never a hang), a
restart on the next call after a crash, large results cut to size with a
note, the server's stderr captured to a log file, roots, elicitation
forwarded to whoever can answer, and `tools/list_changed` noted for the tool
source to re-list.

Sampling requests are answered by `self.sample` (mcp/sampling.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TextIO

from luminaguard.config import McpServer, SandboxSettings
from luminaguard.core.text import inert
from luminaguard.errors import (
    BadMcpServer,
    ConfigError,
    LuminaGuardError,
    McpAuthorizationError,
    McpServerError,
    SandboxError,
    ToolError,
    UserError,
)
from luminaguard.store import private_file

if TYPE_CHECKING:
    from luminaguard.protocols import Sandbox

# The SDK logs failures (with tracebacks) that we report ourselves, in one
# sentence; without a handler of its own, Python would print them to stderr.
logging.getLogger("mcp").addHandler(logging.NullHandler())

INIT_TIMEOUT_S = 30.0
SESSION_LOST = re.compile(
    r"Session terminated|Server returned an error response|exited during", re.IGNORECASE
)
RESULT_LIMIT = 256 * 1024


Elicit = Callable[[str, dict[str, Any] | None], Awaitable[tuple[str, dict[str, Any] | None]]]
"""Answers a server's elicitation: (message, requested schema) -> (action, content)."""

Sample = Callable[[Any], Awaitable[Any]]
"""Answers `sampling/createMessage`: params -> CreateMessageResult | ErrorData."""


class Authorization(Protocol):
    """The browser half of OAuth (mcp/oauth.py's ``LoopbackAuthorization``)."""

    waiting: bool
    """True while a person is authorizing: the start-up timeout does not run then."""

    async def redirect(self, url: str) -> None: ...

    async def callback(self) -> Any: ...


class McpServerHandle:
    def __init__(
        self,
        name: str,
        cfg: McpServer,
        *,
        workspace: Path,
        data_dir: Path,
        sandbox: SandboxSettings,
        cache_dir: Path | None = None,
        init_timeout_s: float = INIT_TIMEOUT_S,
        result_limit: int = RESULT_LIMIT,
        backend: Sandbox | None = None,
        elicit: Elicit | None = None,
        sample: Sample | None = None,
        authorization: Authorization | None = None,
        on_progress: Callable[[str, float, float | None, str | None], None] | None = None,
    ) -> None:
        if not cfg.command and not cfg.url:
            raise ConfigError(
                f"mcp.servers.{name}: set `command` (stdio) or `url` (Streamable HTTP)"
            )
        self.name = name
        self.cfg = cfg
        self.workspace = workspace
        self.data_dir = data_dir
        self.cache_dir = cache_dir or data_dir / "mcp-cache"
        self.sandbox_settings = sandbox
        # The sandbox a stdio server starts in (a run's own; else one of the
        # configured backend, opened at the first start).
        self.backend = backend
        self._own_backend: Sandbox | None = None
        self.init_timeout_s = init_timeout_s
        self.result_limit = result_limit
        self.session: Any = None
        self.sandboxed = bool(cfg.command) and cfg.sandbox
        # Whether it can change the workspace: on the host it can; sandboxed
        # only when the config says `workspace = "write"`.
        self.writes = bool(cfg.command) and (not cfg.sandbox or cfg.workspace == "write")
        # For an HTTP server: `auto` until a transport has worked, then that one.
        self.transport = cfg.transport if cfg.url else "stdio"
        self._runner: asyncio.Task[None] | None = None
        self._closing: asyncio.Event | None = None
        self._log: TextIO | None = None
        self._ready: asyncio.Future[Any] | None = None
        self.starts = 0
        # Who answers a server's elicitation (None: declined), and the browser
        # half of OAuth for an HTTP server (None: a server that asks for
        # authorization fails with a clear error).
        self.elicit = elicit
        self.on_progress = on_progress
        """Told of each progress notification of a call: (tool, progress, total, message)."""
        self.authorization = authorization
        # Set by `notifications/tools/list_changed`; the tool source re-lists
        # before the model is next asked (a request cannot be made from
        # inside the notification handler: it runs on the session's reader).
        self.tools_changed = False
        # Who answers `sampling/createMessage` (with `sampling = true`; mcp/sampling.py).
        self.sample = sample
        # Requests from the server being answered (a person or the model is
        # busy): a call's no-progress timeout does not run meanwhile.
        self._serving = 0
        self._calls: set[_Call] = set()

    def _sandbox(self) -> Sandbox:
        from luminaguard.sandbox import backend_class, open_sandbox

        wanted = self.cfg.backend
        if self.backend is not None and (
            wanted is None or type(self.backend) is backend_class(wanted)
        ):
            return self.backend
        if self._own_backend is None:
            self._own_backend = open_sandbox(
                wanted or self.sandbox_settings.backend, self.workspace, self.sandbox_settings
            )
        return self._own_backend

    @property
    def log_path(self) -> Path:
        return self.data_dir / "mcp-logs" / f"{self.name}.log"

    # --- lifecycle --------------------------------------------------------

    async def start(self) -> None:
        """Connect and initialise, within ``init_timeout_s``. An HTTP server
        that refuses Streamable HTTP (a 4xx to `initialize`) is tried once
        more over the legacy HTTP+SSE transport, which is then kept."""
        if self.alive:
            return
        if self.transport != "auto":
            return await self._start(self.transport)
        try:
            await self._start("streamable-http")
            self.transport = "streamable-http"
        except McpServerError as first:
            if not first.refused:
                raise
            try:
                await self._start("sse")
            except McpServerError as second:
                if not second.why:
                    raise
                raise BadMcpServer(
                    f"MCP server {self.name}: {self.cfg.url} is not an MCP server (Streamable "
                    f"HTTP: {first.why or first}; legacy SSE: {second.why})"
                ) from None
            self.transport = "sse"

    async def _start(self, transport: str) -> None:
        await self.close()
        ready: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._ready = ready
        self._closing = asyncio.Event()
        self._runner = asyncio.create_task(
            self._run(ready, self._closing, transport), name=f"mcp:{self.name}"
        )
        self._runner.add_done_callback(self._ended)
        deadline = time.monotonic() + self.init_timeout_s
        try:
            while True:
                try:
                    self.session = await asyncio.wait_for(
                        asyncio.shield(ready), max(0.0, deadline - time.monotonic())
                    )
                    break
                except TimeoutError:
                    # Waiting on a person to authorize (bounded by the
                    # authorization's own timeout) does not count.
                    if self.authorization is None or not self.authorization.waiting:
                        raise
                    deadline = time.monotonic() + self.init_timeout_s
        except TimeoutError:
            await self.close()
            if ready.done() and not ready.cancelled():
                ready.exception()  # retrieved: the timeout is what is reported
            raise McpServerError(
                f"MCP server {self.name} did not answer `initialize` within {self.init_timeout_s:g} s (see {self.log_path})"
            ) from None
        except McpServerError:
            await self.close()
            raise
        self.starts += 1

    @property
    def alive(self) -> bool:
        return self.session is not None and self._runner is not None and not self._runner.done()

    async def _run(
        self, ready: asyncio.Future[Any], closing: asyncio.Event, transport: str
    ) -> None:
        # The SDK's transports hold anyio task groups: they must be entered and
        # left in one task, so the whole connection lives in this one.
        from mcp import ClientSession

        try:
            async with contextlib.AsyncExitStack() as stack:
                if self.cfg.url:
                    streams = await stack.enter_async_context(self._http(transport))
                else:
                    from mcp import StdioServerParameters
                    from mcp.client.stdio import stdio_client

                    from luminaguard.mcp.launch import server_command

                    command = server_command(
                        self.name, self.cfg, cache=self.cache_dir, workspace=self.workspace
                    )
                    self._log = stack.enter_context(
                        open(private_file(self.log_path), "a", encoding="utf-8")  # noqa: SIM115
                    )
                    self._log.write(
                        f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} start ({'sandboxed' if command.sandboxed else 'ON THE HOST, NOT SANDBOXED'})\n"
                    )
                    self._log.flush()
                    if command.sandboxed:
                        launch = await stack.enter_async_context(
                            self._sandbox().process(command.spec, on_network=self._network_request)
                        )
                    else:
                        launch = command.host_launch()
                    params = StdioServerParameters(
                        command=launch.command[0],
                        args=launch.command[1:],
                        env=launch.env,
                        cwd=None if command.sandboxed else command.cwd,
                    )
                    streams = await stack.enter_async_context(
                        stdio_client(params, errlog=self._log)
                    )
                read, write = streams[0], streams[1]
                session = await stack.enter_async_context(
                    ClientSession(
                        read,
                        write,
                        list_roots_callback=self._roots,
                        elicitation_callback=self._elicitation,
                        sampling_callback=self._sampling if self.cfg.sampling else None,
                        message_handler=self._notified,
                    )
                )
                await session.initialize()
                if not ready.done():
                    ready.set_result(session)
                await closing.wait()
        except BaseException as exc:
            if not ready.done():
                from mcp.client.auth import OAuthFlowError, OAuthRegistrationError, OAuthTokenError
                from mcp.shared.exceptions import MCPError

                oauth = (
                    McpAuthorizationError,
                    OAuthFlowError,
                    OAuthRegistrationError,
                    OAuthTokenError,
                )
                denied = _nested(exc, oauth)
                ours = _nested(exc, LuminaGuardError)
                if isinstance(ours, McpAuthorizationError):  # a whole sentence already
                    message = str(ours)
                elif denied:
                    message = f"MCP server {self.name}: authorization failed: {denied}"
                elif ours:  # the config or the sandbox, said in our words already
                    message = f"MCP server {self.name} cannot start: {ours}"
                else:
                    seen = "" if self.cfg.url else f" (see {self.log_path})"
                    message = f"MCP server {self.name} failed to start: {_describe(exc)}{seen}"
                mistake = isinstance(ours, UserError) and not isinstance(ours, SandboxError)
                failure = (BadMcpServer if mistake else McpServerError)(message)
                failure.why = _short(exc)
                # An error answer to `initialize` (the SDK's stand-in for a 4xx
                # status): the server is there but does not speak this transport.
                failure.refused = (
                    bool(self.cfg.url) and not denied and _nested(exc, MCPError) is not None
                )
                ready.set_exception(failure)
            if isinstance(exc, asyncio.CancelledError):
                raise

    def _network_request(self, record: dict[str, object]) -> None:
        if self._log is not None:
            verdict = "allowed" if record["allowed"] else "REFUSED"
            why = f" ({inert(str(record['reason']))})" if "reason" in record else ""
            self._log.write(
                f"--- network {verdict}: {record['method']} {record['host']}:{record['port']}{why}\n"
            )
            self._log.flush()

    async def _notified(self, message: Any) -> None:
        from mcp import types

        if isinstance(message, Exception) and not self.cfg.url:
            # A stdout line that is not JSON-RPC: a stdio server must write
            # nothing else there. Before `initialize` is answered, that is no
            # MCP server, said at once (not after the 30 s wait).
            line = _bad_line(message)
            if self._log is not None:
                self._log.write(f"--- not JSON-RPC on stdout: {line}\n")
                self._log.flush()
            ready = self._ready
            if ready is not None and not ready.done():
                ready.set_exception(
                    BadMcpServer(
                        f"MCP server {self.name} is not an MCP server: it wrote {line} on "
                        f"stdout, where only JSON-RPC may go (see {self.log_path})"
                    )
                )
            return

        if isinstance(message, types.ToolListChangedNotification):
            self.tools_changed = True

    async def _elicitation(self, context: Any, params: Any) -> Any:
        from mcp import types

        if self.elicit is None:
            return types.ElicitResult(action="decline")
        url_mode = getattr(params, "mode", "form") == "url"
        schema: Any = None
        if url_mode:
            # The person opens the address themselves (it is never opened for
            # them) and says when done; nothing else is sent back.
            message = f"{params.message}\nOpen this address yourself: {params.url}"
        else:
            message = getattr(params, "message", "")
            schema = getattr(params, "requested_schema", None)
            if schema is not None and hasattr(schema, "model_dump"):
                schema = schema.model_dump(by_alias=True)
        self._hold(True)
        try:
            action, content = await self.elicit(message, schema)
        finally:
            self._hold(False)
        if url_mode:
            return types.ElicitResult(action=action)
        return types.ElicitResult(action=action, content=content)

    async def _sampling(self, context: Any, params: Any) -> Any:
        from mcp import types

        if self.sample is None:
            return types.ErrorData(
                code=types.INVALID_REQUEST,
                message="sampling is not available here: only an agent run answers it",
            )
        self._hold(True)
        try:
            return await self.sample(params)
        finally:
            self._hold(False)

    def _http(self, transport: str) -> Any:
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        auth = None
        if self.cfg.oauth.enabled:
            from luminaguard.mcp.oauth import oauth_provider

            auth = oauth_provider(self.name, self.cfg, self.data_dir, self.authorization)
        if transport == "sse":
            from mcp.client.sse import sse_client

            def client_factory(headers: Any = None, timeout: Any = None, auth: Any = None) -> Any:
                return httpx2.AsyncClient(headers=headers, timeout=timeout, auth=auth)

            return sse_client(
                self.cfg.url or "",
                headers=self.cfg.headers,
                timeout=self.cfg.timeout_s,
                httpx_client_factory=client_factory,
                auth=auth,
            )
        client = httpx2.AsyncClient(
            headers=self.cfg.headers,
            timeout=self.cfg.timeout_s,
            follow_redirects=True,
            auth=auth,
        )
        return streamable_http_client(self.cfg.url or "", http_client=client)

    async def _roots(self, context: Any) -> Any:
        from mcp import types

        return types.ListRootsResult(
            roots=[types.Root(uri=self.workspace.resolve().as_uri(), name="workspace")]
        )

    async def close(self) -> None:
        connected = self.session is not None
        self.session = None
        if self._closing is not None:
            self._closing.set()
        if self._runner is not None and not self._runner.done():
            try:
                if not connected:
                    # Still starting (say, stuck before `initialize` answers):
                    # nothing to close politely, cancel at once.
                    raise TimeoutError
                await asyncio.wait_for(asyncio.shield(self._runner), 10)
            except (TimeoutError, Exception):
                self._runner.cancel()
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(self._runner, 10)
        self._runner = None
        if self._own_backend is not None:
            self._own_backend.close()
            self._own_backend = None

    # --- requests ---------------------------------------------------------

    async def _ensure(self) -> Any:
        if not self.alive:
            await self.start()
        return self.session

    async def _bounded(self, coro: Any, what: str, timeout_s: float) -> Any:
        """Await a request, but never past the server's death or ``timeout_s``."""
        assert self._runner is not None
        task = asyncio.ensure_future(coro)
        done, _ = await asyncio.wait(
            {task, self._runner}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        if task in done:
            return self._result(task, what)
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        if self._runner in done:
            self.session = None
            raise McpServerError(
                f"MCP server {self.name} exited during {what}; it will be restarted for the next call (see {self.log_path})"
            )
        raise McpServerError(f"MCP server {self.name} did not answer {what} within {timeout_s:g} s")

    async def list_tools(self) -> list[Any]:
        return await self._list("tools")

    async def call_tool(
        self, tool: str, arguments: dict[str, Any], *, max_s: float | None = None
    ) -> Any:
        """Call a tool. The per-call timeout restarts at every progress
        notification; ``max_s`` (default 10x the timeout) bounds the whole call."""
        return await self._retrying_session(lambda: self._call_tool(tool, arguments, max_s=max_s))

    async def _retrying_session(self, request: Any) -> Any:
        """An HTTP server that forgot our session (a restart answers 404, or 400)
        gets a new session and the request once more: it never reached a live
        session, so repeating it cannot do anything twice. A stdio server that
        died is not retried here: the call may have taken effect."""
        try:
            return await request()
        except (McpServerError, ToolError) as exc:
            if not (self.cfg.url and SESSION_LOST.search(str(exc))):
                raise
            await self.close()
            return await request()

    async def _list(self, kind: str) -> list[Any]:
        """Every page of `KIND/list` (bounded: a server that pages forever is cut off)."""
        from mcp import types

        async def pages() -> list[Any]:
            session = await self._ensure()
            send = getattr(session, f"list_{kind}")
            items: list[Any] = []
            cursor = None
            for _ in range(1000):
                params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
                result = await self._bounded(
                    send(params=params), f"{kind}/list", self.cfg.timeout_s
                )
                items.extend(getattr(result, kind))
                cursor = result.next_cursor
                if not cursor:
                    break
            return items

        items: list[Any] = await self._retrying_session(pages)
        return items

    async def _request(self, what: str, send: Any) -> Any:
        """One request, ``send(session)``, bounded like every other."""

        async def once() -> Any:
            session = await self._ensure()
            return await self._bounded(send(session), what, self.cfg.timeout_s)

        return await self._retrying_session(once)

    async def list_resources(self) -> list[Any]:
        return await self._list("resources")

    async def list_prompts(self) -> list[Any]:
        return await self._list("prompts")

    async def read_resource(self, uri: str) -> Any:
        return await self._request("resources/read", lambda session: session.read_resource(uri))

    async def get_prompt(self, name: str, arguments: dict[str, str] | None = None) -> Any:
        return await self._request(
            "prompts/get", lambda session: session.get_prompt(name, arguments)
        )

    async def _call_tool(
        self, tool: str, arguments: dict[str, Any], *, max_s: float | None = None
    ) -> Any:
        """The call runs in the caller's task under one cancel scope (no extra
        task per call: this is the hot path). Progress moves its deadline on;
        the server's death cancels it (see ``_ended``). An anyio scope, as the
        SDK's own: it swallows a plain asyncio cancellation while it waits."""
        import anyio
        from mcp.shared.exceptions import MCPError

        session = await self._ensure()
        call = _Call(anyio.current_time(), self.cfg.timeout_s, max_s)

        async def progress(progress: float, total: float | None, message: str | None) -> None:
            call.hold() if self._serving else call.moved()
            if self.on_progress is not None:
                self.on_progress(tool, progress, total, message)

        self._calls.add(call)
        try:
            with call.scope:
                if self._serving:  # a request of the server's is being answered
                    call.hold()
                return await session.call_tool(tool, arguments, progress_callback=progress)
            # Only reached when the scope cancelled the call (the SDK sent
            # notifications/cancelled for it).
            if call.server_died:
                self.session = None
                raise ToolError(
                    f"MCP server {self.name} exited during the call to {tool}; it will be restarted for the next call"
                )
            why = (
                f"ran past its overall limit of {call.overall:g} s"
                if call.past_overall()
                else f"made no progress for {self.cfg.timeout_s:g} s"
            )
            raise ToolError(f"mcp:{self.name}/{tool} {why}; the call was cancelled")
        except MCPError as exc:
            try:
                self._translate(exc, f"the call to {tool}")
            except McpServerError as translated:
                raise ToolError(str(translated)) from exc
        finally:
            self._calls.discard(call)

    def _ended(self, runner: asyncio.Task[None]) -> None:
        """The connection's task finished (the server exited): cancel the calls
        waiting on it, which then report the death instead of hanging."""
        for call in list(self._calls):
            call.server_died = True
            call.scope.cancel()

    def _hold(self, held: bool) -> None:
        """Answering a request of the server's (a person or the model is busy):
        the calls' no-progress deadlines wait until it is answered."""
        self._serving += 1 if held else -1
        for call in self._calls:
            call.hold() if held else call.moved()

    def _result(self, task: asyncio.Future[Any], what: str) -> Any:
        """The request's result, with the SDK's errors translated into ours."""
        from mcp.shared.exceptions import MCPError

        try:
            return task.result()
        except MCPError as exc:
            self._translate(exc, what)

    def _translate(self, exc: Exception, what: str) -> NoReturn:
        """The SDK's error as ours (here only)."""
        if "connection closed" in str(exc).lower():
            # The transport is gone: forget the session; the next request restarts it.
            self.session = None
            raise McpServerError(
                f"MCP server {self.name} exited during {what}; it will be restarted for the next call (see {self.log_path})"
            ) from exc
        raise McpServerError(
            f"MCP server {self.name} answered {what} with an error: {exc}"
        ) from exc

    @property
    def offers_resources(self) -> bool:
        caps = getattr(self.session, "server_capabilities", None)
        return caps is not None and caps.resources is not None

    def render_contents(self, result: Any) -> str:
        """A resources/read result as text (binary parts named, not dumped), cut to size."""
        parts = []
        for content in result.contents:
            text = getattr(content, "text", None)
            blob = getattr(content, "blob", "") or ""
            parts.append(
                text
                if text is not None
                else f"[binary {getattr(content, 'mime_type', None) or 'content'}, {len(blob)} base64 characters]"
            )
        return self.cut("\n".join(parts))

    def cut(self, text: str) -> str:
        if len(text) <= self.result_limit:
            return text
        return (
            text[: self.result_limit]
            + f"\n[... result cut: {len(text) - self.result_limit} more characters not kept]"
        )

    def render(self, result: Any) -> tuple[str, bool, dict[str, Any]]:
        """A CallToolResult as (text for the model, is_error, data)."""
        parts = [_block_text(block) for block in getattr(result, "content", None) or []]
        structured = getattr(result, "structured_content", None)
        if structured is not None and not parts:
            import json

            parts.append(json.dumps(structured, ensure_ascii=False))
        text = self.cut("\n".join(parts))
        data: dict[str, Any] = {"server": self.name}
        if structured is not None:
            data["structured"] = structured
        return text, bool(getattr(result, "is_error", False)), data

    def render_prompt(self, result: Any) -> str:
        """A prompts/get result as text: its description, then each message
        under its role."""
        parts = [f"# {result.description}"] if getattr(result, "description", None) else []
        for message in result.messages:
            parts.append(f"[{message.role}]\n{_block_text(message.content)}")
        return self.cut("\n\n".join(parts))


def _block_text(block: Any) -> str:
    """One content block (of a tool result or a prompt message) as text;
    binary parts are named, not dumped."""
    kind = getattr(block, "type", "")
    if kind == "text":
        return str(block.text)
    if kind in ("image", "audio"):
        size = len(getattr(block, "data", "") or "")
        return f"[{kind} {getattr(block, 'mime_type', '')}, {size} base64 characters]"
    if kind == "resource_link":
        return f"[resource link {getattr(block, 'uri', '')}]"
    if kind == "resource":
        res = getattr(block, "resource", None)
        return getattr(res, "text", None) or f"[embedded resource {getattr(res, 'uri', '')}]"
    return f"[{kind} content]"


def _short(exc: BaseException) -> str:
    """A failure in a few words: an HTTP status, an MCP error's message."""
    from mcp.shared.exceptions import MCPError

    # The SDK's HTTP client (httpx or its fork) says the status on `response`.
    status = _first(exc, lambda e: hasattr(getattr(e, "response", None), "status_code"))
    if status is not None:
        response = status.response  # type: ignore[attr-defined]
        return f"HTTP {response.status_code} {getattr(response, 'reason_phrase', '')}".strip()
    error = _nested(exc, MCPError)
    if error is not None:
        return f"an error answer to `initialize` ({error})"
    return ""


def _bad_line(exc: Exception) -> str:
    """The offending stdout line of a parse error, quoted and cut short."""
    errors = getattr(exc, "errors", None)
    text = str(exc)
    if callable(errors):
        with contextlib.suppress(Exception):
            text = str(errors()[0].get("input", text))
    text = inert(text.strip())
    return repr(text if len(text) <= 80 else text[:80] + "…")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _nested(
    exc: BaseException, kinds: type[BaseException] | tuple[type[BaseException], ...]
) -> BaseException | None:
    """The first exception of ``kinds`` in ``exc``, the members of its task
    groups (the SDK's transports nest them) and its causes."""
    return _first(exc, lambda e: isinstance(e, kinds))


def _first(exc: BaseException, test: Callable[[BaseException], bool]) -> BaseException | None:
    if test(exc):
        return exc
    inner = list(exc.exceptions) if isinstance(exc, BaseExceptionGroup) else []
    if exc.__cause__ is not None:
        inner.append(exc.__cause__)
    return next(filter(None, (_first(e, test) for e in inner)), None)


class _Call:
    """One tool call in flight: its cancel scope, whose deadline is the
    per-call timeout moved on by progress, within an overall maximum, and held
    while the server's own request is being answered."""

    def __init__(self, started: float, timeout_s: float, max_s: float | None) -> None:
        import anyio

        self.started = started
        self.timeout_s = timeout_s
        self.overall = max_s if max_s is not None else timeout_s * 10
        self.scope = anyio.CancelScope(deadline=self._next())
        self.server_died = False

    def _next(self) -> float:
        import anyio

        return min(anyio.current_time() + self.timeout_s, self.started + self.overall)

    def moved(self) -> None:
        self.scope.deadline = self._next()

    def hold(self) -> None:
        self.scope.deadline = self.started + self.overall

    def past_overall(self) -> bool:
        import anyio

        return anyio.current_time() >= self.started + self.overall - 1e-3
