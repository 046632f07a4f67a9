"""A client for the official MCP conformance harness.

    npx @modelcontextprotocol/conformance client \\
        --command "python -m luminaguard.mcp.conformance_client" --suite core

The harness passes the server URL as the last argument and the scenario in
`MCP_CONFORMANCE_SCENARIO`. It drives LuminaGuard's own client layer
(`McpServerHandle` over Streamable HTTP), not the bare SDK.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from luminaguard.config import McpOAuth, McpServer, SandboxSettings
from luminaguard.mcp.client import McpServerHandle

# Where a real deployment would publish LuminaGuard's client metadata document;
# the harness's CIMD scenario expects this one.
CLIENT_METADATA_URL = "https://conformance-test.local/client-metadata.json"


def sample_arguments(schema: dict[str, Any]) -> dict[str, Any]:
    """Plausible arguments for a tool from its input schema."""
    out: dict[str, Any] = {}
    for name, prop in (schema.get("properties") or {}).items():
        kind = prop.get("type")
        if "default" in prop:
            out[name] = prop["default"]
        elif kind in ("number", "integer"):
            out[name] = 1
        elif kind == "boolean":
            out[name] = True
        elif kind == "array":
            out[name] = []
        elif kind == "object":
            out[name] = {}
        else:
            out[name] = "conformance"
    return out


async def accept_with_defaults(
    message: str, schema: dict[str, Any] | None
) -> tuple[str, dict[str, Any]]:
    """The harness's elicitations are answered by accepting every default."""
    props = (schema or {}).get("properties") or {}
    return "accept", {name: prop["default"] for name, prop in props.items() if "default" in prop}


class FollowAuthorization:
    """The browser, played headless: the harness's authorization server
    approves at once and redirects to our redirect URI with the code, so the
    authorization URL is fetched without following the redirect."""

    waiting = False

    def __init__(self) -> None:
        self.params: dict[str, str] = {}

    async def redirect(self, url: str) -> None:
        import httpx2

        async with httpx2.AsyncClient(timeout=20) as client:
            response = await client.get(url, follow_redirects=False)
        location = response.headers.get("location")
        if not location:
            raise RuntimeError(
                f"the authorization endpoint answered {response.status_code}, no redirect"
            )
        self.params = {k: v[0] for k, v in parse_qs(urlparse(location).query).items()}

    async def callback(self) -> Any:
        from mcp.shared.auth import AuthorizationCodeResult

        params, self.params = self.params, {}
        return AuthorizationCodeResult(
            code=params.get("code", ""), state=params.get("state"), iss=params.get("iss")
        )


def oauth_settings(scenario: str, context: dict[str, Any], tmp: Path) -> McpOAuth:
    """Pre-registered credentials from the harness's context, the client ID
    metadata document URL the harness expects for CIMD, and for the
    client-credentials scenarios that grant (a secret, or a key for JWTs)."""
    secret_env = None
    if context.get("client_secret"):
        secret_env = "LUMINAGUARD_CONFORMANCE_CLIENT_SECRET"
        os.environ[secret_env] = context["client_secret"]
    key_file = None
    if context.get("private_key_pem"):
        key_file = tmp / "client-key.pem"
        key_file.write_text(context["private_key_pem"])
        key_file.chmod(0o600)
    return McpOAuth(
        grant="client_credentials"
        if scenario.startswith("auth/client-credentials")
        else "authorization_code",
        client_id=context.get("client_id"),
        client_secret_env=secret_env,
        private_key_file=key_file,
        signing_algorithm=context.get("signing_algorithm", "ES256"),
        client_metadata_url=CLIENT_METADATA_URL,
    )


async def run(url: str, scenario: str) -> int:
    context = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
    with tempfile.TemporaryDirectory(prefix="lg-conformance-") as tmp:
        handle = McpServerHandle(
            "conformance",
            McpServer(url=url, timeout_s=20, oauth=oauth_settings(scenario, context, Path(tmp))),
            workspace=Path(tmp),
            data_dir=Path(tmp) / "state",
            sandbox=SandboxSettings(),
            elicit=accept_with_defaults,
            authorization=FollowAuthorization(),
        )
        try:
            tools = await handle.list_tools()
            if scenario != "initialize":
                for tool in tools:
                    result = await handle.call_tool(
                        tool.name, sample_arguments(dict(tool.input_schema or {}))
                    )
                    print(handle.render(result)[0])
        finally:
            await handle.close()
    return 0


def main() -> int:
    if len(sys.argv) < 2:
        print("usage: python -m luminaguard.mcp.conformance_client URL", file=sys.stderr)
        return 2
    return asyncio.run(run(sys.argv[-1], os.environ.get("MCP_CONFORMANCE_SCENARIO", "")))


if __name__ == "__main__":
    sys.exit(main())
