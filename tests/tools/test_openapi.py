"""OpenAPI tools against a real HTTP API on loopback."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from luminaguard.config import OpenApiSource
from luminaguard.core.risk import Risk
from luminaguard.errors import ToolArgumentError, ToolError
from luminaguard.messages import ToolCall
from luminaguard.tools.openapi import OpenApiTools

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "pets", "version": "1"},
    "paths": {
        "/pets": {
            "get": {
                "operationId": "listPets",
                "summary": "List pets",
                "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer"}}],
            },
            "post": {
                "operationId": "createPet",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}
                    },
                },
            },
        },
        "/pets/{petId}": {
            "delete": {
                "operationId": "deletePet",
                "parameters": [{"name": "petId", "in": "path", "schema": {"type": "string"}}],
            }
        },
    },
    "components": {
        "schemas": {
            "Pet": {
                "type": "object",
                "properties": {"name": {"type": "string"}},
                "required": ["name"],
            }
        }
    },
}


class Api(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, Any]]] = []

    def _reply(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        Api.seen.append(
            {
                "method": self.command,
                "path": self.path,
                "auth": self.headers.get("Authorization"),
                "body": body.decode(),
            }
        )

    def do_GET(self) -> None:
        self._record()
        self._reply(200, [{"name": "rex"}])

    def do_POST(self) -> None:
        self._record()
        self._reply(201, {"name": "new"})

    def do_DELETE(self) -> None:
        self._record()
        self._reply(404, {"error": "no such pet"})

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[OpenApiTools, str]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Api)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    spec = tmp_path / "pets.json"
    spec.write_text(json.dumps(SPEC))
    base = f"http://127.0.0.1:{server.server_address[1]}"
    Api.seen = []
    tools = OpenApiTools(
        "pets",
        OpenApiSource(spec=str(spec), base_url=base, auth_env="PETS_TOKEN"),
        env={"PETS_TOKEN": "s3cret"},
    )
    yield tools, base
    server.shutdown()
    server.server_close()


def test_each_operation_is_a_tool_with_a_schema(api: tuple[OpenApiTools, str]) -> None:
    tools, _ = api
    specs = {s.name: s for s in tools.specs()}
    assert set(specs) == {
        "openapi:pets/listPets",
        "openapi:pets/createPet",
        "openapi:pets/deletePet",
    }
    assert specs["openapi:pets/listPets"].parameters["properties"]["limit"]["type"] == "integer"
    create = specs["openapi:pets/createPet"].parameters
    assert (
        create["required"] == ["body"]
        and create["properties"]["body"]["properties"]["name"]["type"] == "string"
    )
    assert specs["openapi:pets/deletePet"].parameters["required"] == ["petId"]


def test_writes_are_red_and_reads_take_the_policy_level(api: tuple[OpenApiTools, str]) -> None:
    tools, _ = api
    assert (
        tools.assess(ToolCall("c", "openapi:pets/createPet", {"body": {"name": "x"}})).risk
        == Risk.RED
    )
    assert tools.assess(ToolCall("c", "openapi:pets/listPets", {})).risk == Risk.RED
    tools.open_world_read = Risk.YELLOW
    assert tools.assess(ToolCall("c", "openapi:pets/listPets", {})).risk == Risk.YELLOW


def test_the_card_shows_the_exact_request_with_the_credential_redacted(
    api: tuple[OpenApiTools, str],
) -> None:
    tools, base = api
    prepared = asyncio.run(tools.prepare(ToolCall("c", "openapi:pets/deletePet", {"petId": "a b"})))
    assert prepared.kind == "request"
    assert prepared.request == {
        "method": "DELETE",
        "url": f"{base}/pets/a%20b",
        "query": {},
        "headers": {"Authorization": "[redacted: $PETS_TOKEN]"},
    }
    assert Api.seen == [], "preparing a request must not send it"
    result = asyncio.run(tools.apply(prepared))
    assert result.is_error and result.output.startswith("HTTP 404")
    assert Api.seen[0]["auth"] == "Bearer s3cret"


def test_calls_send_query_and_body(api: tuple[OpenApiTools, str]) -> None:
    tools, _ = api
    r = asyncio.run(tools.call(ToolCall("c", "openapi:pets/listPets", {"limit": 2})))
    assert r.output.startswith("HTTP 200") and "rex" in r.output
    asyncio.run(tools.call(ToolCall("c", "openapi:pets/createPet", {"body": {"name": "new"}})))
    assert Api.seen[0]["path"] == "/pets?limit=2"
    assert json.loads(Api.seen[1]["body"]) == {"name": "new"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({}, "missing required argument petId"),
        ({"petId": "1", "evil": 1}, "unknown argument"),
        ("{bad", "not valid JSON"),
    ],
)
def test_bad_arguments_are_tool_argument_errors(
    api: tuple[OpenApiTools, str], args: Any, message: str
) -> None:
    tools, _ = api
    with pytest.raises(ToolArgumentError, match=message):
        tools.request(ToolCall("c", "openapi:pets/deletePet", args))


def test_hosts_off_the_allow_list_are_refused(
    api: tuple[OpenApiTools, str], tmp_path: Path
) -> None:
    _tools, base = api
    other = OpenApiTools(
        "pets",
        OpenApiSource(
            spec=str(tmp_path / "pets.json"), base_url=base, allow_hosts=["api.example.com"]
        ),
    )
    with pytest.raises(ToolError, match="not on the network allow-list"):
        asyncio.run(other.call(ToolCall("c", "openapi:pets/listPets", {})))
    assert Api.seen == []
