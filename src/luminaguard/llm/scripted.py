"""The scripted provider: replays a playbook, ignoring what it is sent.

It is the LLM stand-in of the demo and the tests. Playbook format (JSON)::

    {"steps": [
      {"tool_calls": [{"name": "read_file", "arguments": {"path": "README.md"}}],
       "delay_ms": 200},
      {"content": "Done.", "delay_ms": 0}
    ]}

Each step is one assistant turn: tool calls, or final content (or both).
``delay_ms`` simulates model latency. ``arguments`` may also be a string, to
replay a model that sends malformed JSON.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from luminaguard.config import describe_validation_error
from luminaguard.errors import PlaybookError
from luminaguard.messages import AssistantTurn, Message, ToolCall, ToolSpec, Usage


class PlaybookCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    """The tool to call."""
    arguments: Any = Field(default_factory=dict)
    """Its arguments: an object, or a string to replay malformed JSON."""
    id: str | None = None
    """The call id; generated when absent."""


class PlaybookStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tool_calls: list[PlaybookCall] = Field(default_factory=list)
    """Tool calls of this turn."""
    content: str | None = None
    """Text of this turn; a turn with text and no tool calls ends the run."""
    delay_ms: int = Field(0, ge=0, le=600_000)
    """Simulated model latency."""
    usage: dict[str, int] | None = None
    """Reported token usage, e.g. {"input_tokens": 10, "output_tokens": 5}."""

    @model_validator(mode="after")
    def _not_empty(self) -> PlaybookStep:
        if not self.tool_calls and self.content is None:
            raise ValueError("a step needs tool_calls or content")
        return self


class Playbook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: list[PlaybookStep] = Field(min_length=1)

    @classmethod
    def load(cls, path: Path) -> Playbook:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PlaybookError(f"playbook {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise PlaybookError(f"playbook {path} cannot be read: {exc}") from exc
        except json.JSONDecodeError as exc:
            raise PlaybookError(f"playbook {path} is not valid JSON: {exc}") from exc
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise PlaybookError(f"playbook {path}: {describe_validation_error(exc)}") from exc


class ScriptedProvider:
    """Answers turn n of a conversation with step n of the playbook."""

    name = "scripted"

    def __init__(self, playbook: Playbook, label: str = "playbook") -> None:
        self.playbook = playbook
        self.label = label
        self.position = 0

    @classmethod
    def from_path(cls, path: Path) -> ScriptedProvider:
        return cls(Playbook.load(path), label=str(path))

    async def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec],
        *,
        task_type: str = "act",
        on_text: Callable[[str], None] | None = None,
        max_tokens: int | None = None,
    ) -> AssistantTurn:
        steps = self.playbook.steps
        if self.position >= len(steps):
            raise PlaybookError(
                f"{self.label} has no step {self.position + 1} (it has {len(steps)})"
            )
        index = self.position
        step = steps[index]
        self.position += 1
        if step.delay_ms:
            await asyncio.sleep(step.delay_ms / 1000)
        calls = tuple(
            ToolCall(c.id or f"call_{index + 1}_{i + 1}", c.name, c.arguments)
            for i, c in enumerate(step.tool_calls)
        )
        usage = Usage(**(step.usage or {}))
        return AssistantTurn(
            content=step.content,
            tool_calls=calls,
            usage=usage,
            stop_reason="tool_calls" if calls else "stop",
            model=f"scripted/{self.label}",
            provider="scripted",
        )
