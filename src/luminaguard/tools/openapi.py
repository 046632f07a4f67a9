"""OpenAPI-described APIs as tools.

Each operation of ``[openapi.NAME]`` becomes the tool
``openapi:NAME/<operationId>``; its JSON schema is built from the path, query
and header parameters and the JSON request body (as ``body``). Requests go
out with httpx, only to hosts on the source's allow-list, with the credential
taken from an environment variable at call time (the journal and the Diff
Card show the header with its value redacted).

Levels: anything but GET/HEAD/OPTIONS is RED (it acts on the outside world
and cannot be previewed); a GET is an open-world read at the level the
policy sets (`open_world_read`, RED by default).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from luminaguard.config import OpenApiSource
from luminaguard.core.risk import Assessment, Risk
from luminaguard.errors import ConfigError, ToolArgumentError, ToolError
from luminaguard.messages import ToolCall, ToolResult, ToolSpec
from luminaguard.protocols import Prepared
from luminaguard.tools.base import argument_object

READ_METHODS = ("get", "head", "options")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
RESPONSE_LIMIT = 100_000


@dataclass(frozen=True)
class Operation:
    tool: str
    method: str
    path: str
    params: tuple[dict[str, Any], ...]
    body: dict[str, Any] | None
    body_required: bool
    spec: ToolSpec


def load_document(source: str) -> dict[str, Any]:
    try:
        if re.match(r"https?://", source):
            import httpx

            text = httpx.get(source, timeout=30).raise_for_status().text
        else:
            text = Path(source).read_text(encoding="utf-8")
    except Exception as exc:
        raise ConfigError(f"OpenAPI spec {source} cannot be loaded: {exc}") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        import yaml

        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"OpenAPI spec {source} is neither JSON nor YAML: {exc}") from exc
    if not isinstance(doc, dict) or "paths" not in doc:
        raise ConfigError(f"OpenAPI spec {source} has no `paths`")
    return doc


def _resolve(doc: dict[str, Any], node: Any, seen: frozenset[str] = frozenset()) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            if ref in seen:
                return {"description": f"(recursive {ref})"}
            target: Any = doc
            for part in ref[2:].split("/"):
                target = (
                    target.get(part.replace("~1", "/").replace("~0", "~"), {})
                    if isinstance(target, dict)
                    else {}
                )
            return _resolve(doc, target, seen | {ref})
        return {k: _resolve(doc, v, seen) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(doc, v, seen) for v in node]
    return node


def operations(name: str, doc: dict[str, Any]) -> list[Operation]:
    out = []
    for path, item in (doc.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        shared = item.get("parameters", [])
        for method in METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            op = _resolve(doc, op)
            op_id = op.get("operationId") or re.sub(
                r"[^a-zA-Z0-9_]+", "_", f"{method}_{path}"
            ).strip("_")
            params = [
                _resolve(doc, p)
                for p in [*shared, *op.get("parameters", [])]
                if isinstance(p, dict)
            ]
            params = [p for p in params if p.get("in") in ("path", "query", "header")]
            props: dict[str, Any] = {}
            required = []
            for p in params:
                schema = dict(p.get("schema") or {"type": "string"})
                if p.get("description"):
                    schema["description"] = p["description"]
                props[p["name"]] = schema
                if p.get("required") or p.get("in") == "path":
                    required.append(p["name"])
            body_schema = None
            body_required = False
            content = (op.get("requestBody") or {}).get("content") or {}
            if "application/json" in content:
                body_schema = content["application/json"].get("schema") or {}
                body_required = bool(op["requestBody"].get("required"))
                props["body"] = {
                    **body_schema,
                    "description": body_schema.get("description", "JSON request body"),
                }
                if body_required:
                    required.append("body")
            description = op.get("summary") or op.get("description") or f"{method.upper()} {path}"
            tool_schema: dict[str, Any] = {
                "type": "object",
                "properties": props,
                "additionalProperties": False,
            }
            if required:
                tool_schema["required"] = required
            tool = f"openapi:{name}/{op_id}"
            spec = ToolSpec(tool, f"{description} ({method.upper()} {path})", tool_schema)
            out.append(
                Operation(tool, method, path, tuple(params), body_schema, body_required, spec)
            )
    return out


class OpenApiTools:
    """One OpenAPI-described API as a ``ToolSource``."""

    def __init__(
        self,
        name: str,
        source: OpenApiSource,
        *,
        open_world_read: Risk = Risk.RED,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.source = source
        self.open_world_read = open_world_read
        self.env = os.environ if env is None else env
        doc = load_document(source.spec)
        servers = doc.get("servers") or []
        self.base_url = (
            source.base_url or (servers[0].get("url") if servers else "") or ""
        ).rstrip("/")
        if not re.match(r"https?://", self.base_url):
            raise ConfigError(
                f"openapi.{name}: no usable base_url (set base_url, or a full URL in the spec's servers)"
            )
        host = urlsplit(self.base_url).hostname or ""
        self.allow = {h.lower() for h in (source.allow_hosts or [host])}
        self.ops = {op.tool: op for op in operations(name, doc)}

    def specs(self) -> Sequence[ToolSpec]:
        return [op.spec for op in self.ops.values()]

    def _op(self, call: ToolCall) -> Operation:
        op = self.ops.get(call.name)
        if op is None:
            raise ToolError(f"unknown tool {call.name!r}")
        return op

    def assess(self, call: ToolCall) -> Assessment:
        op = self._op(call)
        if op.method in READ_METHODS:
            return Assessment.of(
                self.open_world_read,
                "openapi-read",
                f"{op.method.upper()} {op.path} reads from {self.base_url}",
            )
        return Assessment.of(
            Risk.RED,
            "openapi-write",
            f"{op.method.upper()} {op.path} acts on {self.base_url} and cannot be previewed",
        )

    def request(self, call: ToolCall) -> dict[str, Any]:
        """The exact request ``call`` makes (the credential redacted)."""
        op = self._op(call)
        args = argument_object(call.name, call.arguments)
        known = {p["name"] for p in op.params} | ({"body"} if op.body is not None else set())
        unknown = sorted(set(args) - known)
        if unknown:
            raise ToolArgumentError(f"{call.name}: unknown argument(s) {', '.join(unknown)}")
        path = op.path
        query: dict[str, Any] = {}
        headers: dict[str, str] = {}
        for p in op.params:
            value = args.get(p["name"])
            if value is None:
                if p.get("required") or p.get("in") == "path":
                    raise ToolArgumentError(f"{call.name}: missing required argument {p['name']}")
                continue
            if p["in"] == "path":
                path = path.replace("{" + p["name"] + "}", _quote(str(value)))
            elif p["in"] == "query":
                query[p["name"]] = value
            else:
                headers[p["name"]] = str(value)
        if op.body_required and "body" not in args:
            raise ToolArgumentError(f"{call.name}: missing required argument body")
        req: dict[str, Any] = {
            "method": op.method.upper(),
            "url": self.base_url + path,
            "query": query,
            "headers": headers,
        }
        if "body" in args:
            req["body"] = args["body"]
        if self.source.auth_env:
            req["headers"][self.source.auth_header] = "[redacted: $" + self.source.auth_env + "]"
        return req

    async def prepare(self, call: ToolCall, *, live: bool = False) -> Prepared:
        return Prepared(call, "request", request=self.request(call))

    async def call(self, call: ToolCall) -> ToolResult:
        return await self._send(self.request(call))

    async def apply(self, prepared: Prepared) -> ToolResult:
        """Send exactly the request the card showed."""
        assert prepared.request is not None
        return await self._send(prepared.request)

    def discard(self, prepared: Prepared) -> None:
        pass

    async def update(self) -> bool:
        """A fixed set of tools: never changes."""
        return False

    async def _send(self, request: dict[str, Any]) -> ToolResult:
        import httpx

        host = (urlsplit(request["url"]).hostname or "").lower()
        if host not in self.allow:
            raise ToolError(
                f"{host} is not on the network allow-list of openapi.{self.name} ({', '.join(sorted(self.allow))})"
            )
        headers = dict(request["headers"])
        if self.source.auth_env:
            token = self.env.get(self.source.auth_env)
            if not token:
                raise ToolError(
                    f"openapi.{self.name}: the credential variable {self.source.auth_env} is not set"
                )
            headers[self.source.auth_header] = self.source.auth_prefix + token
        try:
            async with httpx.AsyncClient(
                timeout=self.source.timeout_s, follow_redirects=False, trust_env=False
            ) as client:
                response = await client.request(
                    request["method"],
                    request["url"],
                    params=request["query"],
                    headers=headers,
                    json=request.get("body"),
                )
        except httpx.HTTPError as exc:
            raise ToolError(f"{request['method']} {request['url']} failed: {exc}") from exc
        text = response.text
        if len(text) > RESPONSE_LIMIT:
            text = text[:RESPONSE_LIMIT] + f"\n[... {len(text) - RESPONSE_LIMIT} more characters]"
        return ToolResult(
            f"HTTP {response.status_code}\n{text}",
            is_error=response.status_code >= 400,
            data={"status": response.status_code},
        )


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")
