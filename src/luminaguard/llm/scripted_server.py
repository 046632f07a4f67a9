"""The scripted provider served over HTTP, in the real OpenAI chat-completions
and Anthropic messages wire formats (streaming included).

It is the test transport that ships with the package: point the real SDK
clients at it and they exercise their real request and response handling.
It replays one playbook (see ``scripted.py``); a step may instead be an error
to serve, to test the router::

    {"error": {"status": 429, "retry_after": 0.2, "message": "slow down"}}
    {"error": {"status": 400, "code": "context_length_exceeded"}}
    {"content": "late", "delay_ms": 3000}       # for client timeouts

What it is not: a model. It ignores what it is sent, except to record it
(``GET /_requests``) so tests can check what the client sent.

    python -m luminaguard.llm.scripted_server PLAYBOOK [--port N]
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class Script:
    """The playbook, replayed one step per request across all endpoints."""

    def __init__(self, steps: list[dict[str, Any]]) -> None:
        self.steps = steps
        self.position = 0
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def next(self, request: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.requests.append(request)
            if self.position >= len(self.steps):
                return {
                    "error": {
                        "status": 500,
                        "message": f"playbook exhausted after {len(self.steps)} steps",
                    }
                }
            step = self.steps[self.position]
            self.position += 1
            return step


def _usage(step: dict[str, Any], body: dict[str, Any]) -> tuple[int, int]:
    usage = step.get("usage") or {}
    tokens_in = int(
        usage.get("input_tokens", max(1, len(json.dumps(body.get("messages", ""))) // 4))
    )
    tokens_out = int(usage.get("output_tokens", max(1, len(json.dumps(step)) // 4)))
    return tokens_in, tokens_out


def _arguments(call: dict[str, Any]) -> str:
    args = call.get("arguments", {})
    return args if isinstance(args, str) else json.dumps(args)


class Handler(BaseHTTPRequestHandler):
    server: ScriptedServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Many small event writes: without this, Nagle and delayed ACKs add
        # tens of milliseconds to each one.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/_requests"):
            self._json(200, self.server.script.requests)
        elif self.path.rstrip("/").endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]})
        else:
            self._json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            self._json(400, {"error": {"message": "invalid JSON"}})
            return
        anthropic = self.path.rstrip("/").endswith("/messages")
        step = self.server.script.next(
            {"path": self.path, "body": body, "headers": dict(self.headers)}
        )
        if step.get("delay_ms"):
            time.sleep(step["delay_ms"] / 1000)
        if "error" in step:
            self._error(step["error"], anthropic)
            return
        if anthropic:
            self._anthropic(step, body)
        else:
            self._openai(step, body)

    # --- errors -----------------------------------------------------------

    def _error(self, err: dict[str, Any], anthropic: bool) -> None:
        status = int(err.get("status", 500))
        code = err.get("code")
        message = err.get("message") or (
            "prompt is too long: maximum context length exceeded"
            if code == "context_length_exceeded"
            else f"scripted error {status}"
        )
        headers = {}
        if "retry_after" in err:
            headers["Retry-After"] = str(err["retry_after"])
        if anthropic:
            kind = {
                429: "rate_limit_error",
                400: "invalid_request_error",
                529: "overloaded_error",
                401: "authentication_error",
            }.get(status, "api_error")
            payload: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": message}}
        else:
            payload = {
                "error": {
                    "message": message,
                    "type": "invalid_request_error" if status == 400 else "server_error",
                    "code": code,
                }
            }
        self._json(status, payload, headers)

    # --- OpenAI -----------------------------------------------------------

    def _openai(self, step: dict[str, Any], body: dict[str, Any]) -> None:
        model = body.get("model", "scripted")
        calls = step.get("tool_calls") or []
        tokens_in, tokens_out = _usage(step, body)
        finish = "tool_calls" if calls else "stop"
        cid = "chatcmpl-" + uuid.uuid4().hex[:12]
        tool_calls: list[dict[str, Any]] = [
            {
                "id": c.get("id") or f"call_{uuid.uuid4().hex[:8]}",
                "type": "function",
                "function": {"name": c["name"], "arguments": _arguments(c)},
            }
            for c in calls
        ]
        usage = {
            "prompt_tokens": tokens_in,
            "completion_tokens": tokens_out,
            "total_tokens": tokens_in + tokens_out,
        }
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": step.get("content")}
            if tool_calls:
                message["tool_calls"] = tool_calls
            self._json(
                200,
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": usage,
                },
            )
            return
        self._sse_start()

        def chunk(
            delta: dict[str, Any], finish_reason: str | None = None, with_usage: bool = False
        ) -> dict[str, Any]:
            out: dict[str, Any] = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }
            if with_usage:
                out["choices"] = []
                out["usage"] = usage
            return out

        self._event(chunk({"role": "assistant", "content": ""}))
        content = step.get("content") or ""
        for i in range(0, len(content), 8):
            self._event(chunk({"content": content[i : i + 8]}))
        for index, call in enumerate(tool_calls):
            args = call["function"]["arguments"]
            self._event(
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": index,
                                "id": call["id"],
                                "type": "function",
                                "function": {"name": call["function"]["name"], "arguments": ""},
                            }
                        ]
                    }
                )
            )
            for i in range(0, len(args), 16):
                self._event(
                    chunk(
                        {
                            "tool_calls": [
                                {"index": index, "function": {"arguments": args[i : i + 16]}}
                            ]
                        }
                    )
                )
        self._event(chunk({}, finish))
        if (body.get("stream_options") or {}).get("include_usage"):
            self._event(chunk({}, with_usage=True))
        self._raw(b"data: [DONE]\n\n")
        self._raw(b"")

    # --- Anthropic --------------------------------------------------------

    def _anthropic(self, step: dict[str, Any], body: dict[str, Any]) -> None:
        model = body.get("model", "scripted")
        calls = step.get("tool_calls") or []
        tokens_in, tokens_out = _usage(step, body)
        mid = "msg_" + uuid.uuid4().hex[:12]
        blocks: list[dict[str, Any]] = []
        if step.get("content"):
            blocks.append({"type": "text", "text": step["content"]})
        for c in calls:
            args = c.get("arguments", {})
            blocks.append(
                {
                    "type": "tool_use",
                    "id": c.get("id") or f"toolu_{uuid.uuid4().hex[:8]}",
                    "name": c["name"],
                    "input": args,
                    "_raw": args if isinstance(args, str) else None,
                }
            )
        stop = "tool_use" if calls else "end_turn"
        if not body.get("stream"):
            content = [{k: v for k, v in b.items() if k != "_raw"} for b in blocks]
            for b in content:
                if b["type"] == "tool_use" and isinstance(b["input"], str):
                    b["input"] = {}
            self._json(
                200,
                {
                    "id": mid,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": content,
                    "stop_reason": stop,
                    "stop_sequence": None,
                    "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out},
                },
            )
            return
        self._sse_start()
        self._event(
            {
                "type": "message_start",
                "message": {
                    "id": mid,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": tokens_in, "output_tokens": 1},
                },
            },
            "message_start",
        )
        for index, b in enumerate(blocks):
            if b["type"] == "text":
                self._event(
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "text", "text": ""},
                    },
                    "content_block_start",
                )
                for i in range(0, len(b["text"]), 8):
                    self._event(
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "text_delta", "text": b["text"][i : i + 8]},
                        },
                        "content_block_delta",
                    )
            else:
                self._event(
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {
                            "type": "tool_use",
                            "id": b["id"],
                            "name": b["name"],
                            "input": {},
                        },
                    },
                    "content_block_start",
                )
                raw = b["_raw"] if b["_raw"] is not None else json.dumps(b["input"])
                for i in range(0, len(raw), 16):
                    self._event(
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": raw[i : i + 16]},
                        },
                        "content_block_delta",
                    )
            self._event({"type": "content_block_stop", "index": index}, "content_block_stop")
        self._event(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": tokens_out},
            },
            "message_delta",
        )
        self._event({"type": "message_stop"}, "message_stop")
        self._raw(b"")

    # --- plumbing ---------------------------------------------------------

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _sse_start(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _event(self, payload: dict[str, Any], name: str | None = None) -> None:
        text = (f"event: {name}\n" if name else "") + f"data: {json.dumps(payload)}\n\n"
        self._raw(text.encode())

    def _raw(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


class ScriptedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, steps: list[dict[str, Any]], host: str = "127.0.0.1", port: int = 0) -> None:
        self.script = Script(steps)
        super().__init__((host, port), Handler)
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> ScriptedServer:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Serve a playbook in the OpenAI and Anthropic wire formats."
    )
    parser.add_argument("playbook", type=Path)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    steps = json.loads(args.playbook.read_text(encoding="utf-8"))["steps"]
    with ScriptedServer(steps, port=args.port) as server:
        print(
            f"serving {args.playbook} at {server.base_url}/v1 (OpenAI) and {server.base_url} (Anthropic)",
            flush=True,
        )
        threading.Event().wait()


if __name__ == "__main__":
    main()
