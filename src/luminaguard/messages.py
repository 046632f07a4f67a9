"""The values that flow through a run: messages, tool calls, tool results.

Plain frozen dataclasses: they cross no process boundary by themselves. Where
they are written down (the journal, a wire format) ``to_dict`` gives the JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class ToolCall:
    """One call the model asked for.

    ``arguments`` is what the model sent: normally a JSON object (a dict), but a
    model can send a string that is not JSON, or JSON that is not an object; the
    tool layer turns that into an error observation instead of crashing.
    """

    id: str
    name: str
    arguments: Any

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Usage:
    """Tokens the provider reports for one turn (0 where it reports none)."""

    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class Message:
    """One chat message in the provider-neutral form the loop keeps."""

    role: Role
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [c.to_dict() for c in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            out["name"] = self.name
        return out


@dataclass(frozen=True)
class AssistantTurn:
    """A provider's answer: text, tool calls, or both."""

    content: str | None
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = field(default_factory=Usage)
    stop_reason: str = "stop"
    model: str = ""
    ttft_s: float | None = None
    """Time to the first streamed token, when streamed."""
    provider: str = ""
    """The deployment that answered (``PROVIDER/MODEL``)."""
    request_id: str = ""
    """Set by the router: the metrics record of this answer."""
    cost_usd: float = 0.0
    """From the configured prices; 0 when none is set."""

    def as_message(self) -> Message:
        return Message(role="assistant", content=self.content, tool_calls=self.tool_calls)


@dataclass(frozen=True)
class ToolSpec:
    """What the model is told about a tool: its name, purpose and JSON schema."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class ToolResult:
    """What a tool call produced. ``output`` is the observation the model reads."""

    output: str
    is_error: bool = False
    data: dict[str, Any] = field(default_factory=dict)
