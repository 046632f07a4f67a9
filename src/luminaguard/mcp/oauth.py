"""OAuth 2.1 for HTTP MCP servers, on the SDK's `OAuthClientProvider`.

The SDK runs the protocol: metadata discovery (protected resource, then
authorization server, with the spec's fallbacks), scope selection and step-up
on `403 insufficient_scope`, dynamic registration or a client ID metadata
document, PKCE, the token exchange and refresh. What it leaves to a client,
and what this module adds:

- where tokens live: one file per server in the data directory
  (`<data_dir>/mcp-oauth/NAME.json`, mode 0600 in a 0700 directory), outside
  the workspace and never mounted into a sandbox; a file written for another
  URL is ignored; the expiry is stored so an expired token is refreshed
  before it is sent, not after a 401;
- a pre-registered client (`client_id`, its secret read from an environment
  variable, never stored);
- the browser half: the person opens the authorization URL and the
  authorization server sends the browser back to a one-shot listener on
  127.0.0.1 (`LoopbackAuthorization`). With nobody to ask, authorization
  fails at once with one clear error naming `luminaguard mcp login NAME`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from luminaguard.config import McpServer
from luminaguard.errors import ConfigError, McpAuthorizationError

LOGIN_TIMEOUT_S = 300.0


class FileTokenStorage:
    """The SDK's `TokenStorage` in one private file per server."""

    def __init__(
        self, path: Path, server_url: str, preregistered: Any = None, *, configured: bool = False
    ) -> None:
        self.path = path
        self.server_url = server_url
        self.preregistered = preregistered
        # The client comes from the config (its secret from the environment):
        # nothing about it is written here.
        self.configured = configured or preregistered is not None

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("server_url") != self.server_url:
            return {}
        return data

    def _save(self, **fields: Any) -> None:
        data = {**self._load(), "server_url": self.server_url, **fields}
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    @property
    def expires_at(self) -> float | None:
        value = self._load().get("expires_at")
        return float(value) if isinstance(value, int | float) else None

    async def get_tokens(self) -> Any:
        from mcp.shared.auth import OAuthToken

        tokens = self._load().get("tokens")
        return OAuthToken.model_validate(tokens) if tokens else None

    async def set_tokens(self, tokens: Any) -> None:
        expires_at = None
        if tokens.expires_in:
            # Counted as expired a little early (a tenth of its life, at most
            # 30 s): the server's clock and its rounding decide, and a token
            # it refuses costs a whole new authorization, not a refresh.
            life = float(tokens.expires_in)
            expires_at = time.time() + life - min(30.0, life / 10)
        self._save(tokens=tokens.model_dump(mode="json", exclude_none=True), expires_at=expires_at)

    async def get_client_info(self) -> Any:
        from mcp.shared.auth import OAuthClientInformationFull

        if self.preregistered is not None:
            return self.preregistered
        info = self._load().get("client_info")
        return OAuthClientInformationFull.model_validate(info) if info else None

    async def set_client_info(self, client_info: Any) -> None:
        if self.configured:
            return
        self._save(client_info=client_info.model_dump(mode="json", exclude_none=True))

    def forget(self) -> bool:
        """Remove the stored tokens and registration; whether there were any."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True


def token_path(data_dir: Path, name: str) -> Path:
    return data_dir / "mcp-oauth" / f"{name}.json"


def redirect_uri(cfg: McpServer) -> str:
    return f"http://127.0.0.1:{cfg.oauth.redirect_port}/callback"


class _SharedTokens:
    """Mixed into the SDK's providers: what the SDK keeps in memory, shared
    through the token file (``context.storage``) with every other process
    using this server (runs, swarm workers)."""

    context: Any

    def _stored_expiry(self) -> None:
        # The SDK counts from the full lifetime; the stored (early) expiry wins.
        expires_at = self.context.storage.expires_at
        if self.context.current_tokens is not None and expires_at is not None:
            self.context.token_expiry_time = expires_at

    async def _initialize(self) -> None:
        await super()._initialize()  # type: ignore[misc]
        # A stored token past its expiry is refreshed (or fetched again)
        # before it is sent, not after a 401.
        self._stored_expiry()

    async def _handle_token_response(self, response: Any) -> None:
        await super()._handle_token_response(response)  # type: ignore[misc]
        self._stored_expiry()

    async def _refresh_token(self) -> Any:
        # Another process may have refreshed first; authorization servers
        # rotate refresh tokens, so ours may be spent: use the newest.
        stored = await self.context.storage.get_tokens()
        current = self.context.current_tokens
        if (
            stored is not None
            and stored.refresh_token
            and current is not None
            and stored.refresh_token != current.refresh_token
        ):
            self.context.current_tokens = stored
        return await super()._refresh_token()  # type: ignore[misc]

    async def _handle_refresh_response(self, response: Any) -> bool:
        before = self.context.current_tokens
        if await super()._handle_refresh_response(response):  # type: ignore[misc]
            self._stored_expiry()
            return True
        # Refused: another process may have used the same refresh token a
        # moment earlier (rotation spends it); its fresh tokens are stored.
        storage = self.context.storage
        stored = await storage.get_tokens()
        expires_at = storage.expires_at
        if (
            stored is not None
            and before is not None
            and stored.access_token != before.access_token
            and (expires_at is None or expires_at > time.time())
        ):
            self.context.current_tokens = stored
            self.context.token_expiry_time = expires_at
            return True
        return False


def _sharing(base: type) -> type:
    return type(base.__name__, (_SharedTokens, base), {})


def oauth_provider(
    name: str,
    cfg: McpServer,
    data_dir: Path,
    authorization: Any,
) -> Any:
    """An httpx auth for ``cfg``'s server. ``authorization`` is the browser half
    (an object with ``redirect(url)`` and ``callback()``), or None when nobody
    can be asked."""
    oauth = cfg.oauth
    path = token_path(data_dir, name)
    secret = None
    if oauth.client_secret_env:
        secret = os.environ.get(oauth.client_secret_env)
        if not secret:
            raise ConfigError(
                f"mcp.servers.{name}.oauth.client_secret_env: {oauth.client_secret_env} is not set"
            )
    try:
        if oauth.grant == "client_credentials":
            storage = FileTokenStorage(path, cfg.url or "", configured=True)
            return _client_credentials(name, cfg, storage, secret)
        return _authorization_code(name, cfg, path, secret, authorization)
    except ValueError as exc:
        raise ConfigError(f"mcp.servers.{name}.oauth: {exc}") from None


def _authorization_code(
    name: str, cfg: McpServer, path: Path, secret: str | None, authorization: Any
) -> Any:
    """A person authorizes in a browser; the client is pre-registered, or
    registers itself (client ID metadata document, or dynamically)."""
    from mcp.client.auth import OAuthClientProvider
    from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata

    oauth = cfg.oauth
    preregistered = None
    if oauth.client_id:
        preregistered = OAuthClientInformationFull(
            client_id=oauth.client_id,
            client_secret=secret,
            redirect_uris=[redirect_uri(cfg)],
            token_endpoint_auth_method=oauth.token_endpoint_auth_method
            or ("client_secret_basic" if secret else "none"),
        )
    metadata = OAuthClientMetadata(
        client_name="LuminaGuard",
        redirect_uris=[redirect_uri(cfg)],
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        scope=" ".join(oauth.scopes) or None,
    )

    async def redirect(url: str) -> None:
        if authorization is None:
            raise McpAuthorizationError(
                f"MCP server {name} needs authorization: run `luminaguard mcp login {name}` first"
            )
        await authorization.redirect(url)

    async def callback() -> Any:
        assert authorization is not None
        return await authorization.callback()

    return _sharing(OAuthClientProvider)(
        cfg.url or "",
        metadata,
        FileTokenStorage(path, cfg.url or "", preregistered),
        redirect_handler=redirect,
        callback_handler=callback,
        client_metadata_url=oauth.client_metadata_url,
    )


def _client_credentials(
    name: str, cfg: McpServer, storage: FileTokenStorage, secret: str | None
) -> Any:
    """Machine to machine: a token for the client's own credentials, no person."""
    import warnings

    from mcp.client.auth.extensions.client_credentials import (
        ClientCredentialsOAuthProvider,
        PrivateKeyJWTOAuthProvider,
        SignedJWTParameters,
    )

    oauth = cfg.oauth
    where = f"mcp.servers.{name}.oauth"
    if not oauth.client_id:
        raise ConfigError(f"{where}: grant client_credentials needs client_id")
    scope = " ".join(oauth.scopes) or None
    with warnings.catch_warnings():
        # Without `issuer` the SDK warns on every start; the docs say to set it.
        warnings.simplefilter("ignore")
        if oauth.private_key_file is not None:
            try:
                key = oauth.private_key_file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"{where}.private_key_file: {exc.strerror}") from None
            assertion = SignedJWTParameters(
                issuer=oauth.client_id,
                subject=oauth.client_id,
                signing_algorithm=oauth.signing_algorithm,
                signing_key=key,
            ).create_assertion_provider()
            return _sharing(PrivateKeyJWTOAuthProvider)(
                cfg.url or "", storage, oauth.client_id, assertion, scope=scope, issuer=oauth.issuer
            )
        if not secret:
            raise ConfigError(
                f"{where}: grant client_credentials needs client_secret_env or private_key_file"
            )
        method = oauth.token_endpoint_auth_method
        return _sharing(ClientCredentialsOAuthProvider)(
            cfg.url or "",
            storage,
            oauth.client_id,
            secret,
            token_endpoint_auth_method=method
            if method in ("client_secret_post",)
            else "client_secret_basic",
            scope=scope,
            issuer=oauth.issuer,
        )


class LoopbackAuthorization:
    """The person opens the authorization URL; the authorization server sends
    the browser back to a one-shot HTTP listener on 127.0.0.1, which hands the
    code to the flow."""

    def __init__(
        self,
        port: int,
        *,
        notify: Callable[[str], None] | None = None,
        open_browser: bool = True,
        timeout_s: float = LOGIN_TIMEOUT_S,
    ) -> None:
        self.port = port
        self.notify = notify or (lambda text: print(text, file=sys.stderr, flush=True))
        self.open_browser = open_browser
        self.timeout_s = timeout_s
        self._server: asyncio.Server | None = None
        self._result: asyncio.Future[dict[str, str]] | None = None
        # True from showing the address until the browser comes back: the
        # server's start-up timeout does not run while a person is deciding.
        self.waiting = False

    async def redirect(self, url: str) -> None:
        self._result = asyncio.get_running_loop().create_future()
        self.waiting = True
        try:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        except OSError as exc:
            self.waiting = False
            raise McpAuthorizationError(
                f"cannot listen on 127.0.0.1:{self.port} for the authorization callback: {exc.strerror} (set oauth.redirect_port)"
            ) from None
        self.notify(f"Open this address to authorize LuminaGuard:\n  {url}")
        if self.open_browser:
            import webbrowser

            with contextlib.suppress(Exception):
                webbrowser.open(url)

    async def callback(self) -> Any:
        from mcp.shared.auth import AuthorizationCodeResult

        assert self._result is not None
        try:
            params = await asyncio.wait_for(self._result, self.timeout_s)
        except TimeoutError:
            raise McpAuthorizationError(
                f"no authorization arrived within {self.timeout_s:g} s"
            ) from None
        finally:
            self.waiting = False
            if self._server is not None:
                self._server.close()
                self._server = None
        if "error" in params:
            raise McpAuthorizationError(
                f"authorization refused: {params['error']} {params.get('error_description', '')}".strip()
            )
        return AuthorizationCodeResult(
            code=params.get("code", ""), state=params.get("state"), iss=params.get("iss")
        )

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 10)
            while (await asyncio.wait_for(reader.readline(), 10)) not in (b"\r\n", b"\n", b""):
                pass
            parts = line.decode("latin-1").split()
            target = urlparse(parts[1]) if len(parts) >= 2 else urlparse("/")
            params = {k: v[0] for k, v in parse_qs(target.query).items()}
            done = target.path == "/callback" and ("code" in params or "error" in params)
            body = (
                "LuminaGuard: authorization received, you can close this tab.\n"
                if done
                else "Not found\n"
            ).encode()
            status = "200 OK" if done else "404 Not Found"
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            if done and self._result is not None and not self._result.done():
                self._result.set_result(params)
        except (TimeoutError, OSError):
            pass
        finally:
            writer.close()
