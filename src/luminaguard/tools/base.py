"""The ``Tool`` model: a tool is a plain typed function.

The JSON schema comes from the signature, the description from the docstring,
as in simonw/llm. The first parameter is the context the tool acts on and is
not shown to the model.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, get_type_hints

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from luminaguard.errors import ToolArgumentError
from luminaguard.messages import ToolResult, ToolSpec

ToolFn = Callable[..., Awaitable[ToolResult]]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    args_model: type[BaseModel]
    fn: ToolFn
    spec: ToolSpec
    """What the model is told; built once, from the arguments' JSON schema."""

    def parse(self, arguments: Any) -> BaseModel:
        """Validate what the model sent; anything wrong is a ``ToolArgumentError``."""
        arguments = argument_object(self.name, arguments)
        try:
            return self.args_model.model_validate(arguments)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                for e in exc.errors()
            )
            raise ToolArgumentError(f"{self.name}: {problems}") from None


def argument_object(tool: str, arguments: Any) -> dict[str, Any]:
    """What the model sent as arguments, as a JSON object, or a ``ToolArgumentError``
    (a string that is not JSON, or JSON that is not an object)."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as exc:
            raise ToolArgumentError(
                f"{tool}: arguments are not valid JSON ({exc.msg} at position {exc.pos})"
            ) from None
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise ToolArgumentError(
            f"{tool}: arguments must be a JSON object, got {type(arguments).__name__}"
        )
    return arguments


def tool(fn: ToolFn) -> Tool:
    """Make a ``Tool`` from ``async def name(ctx, arg: type = default, ...) -> ToolResult``."""
    sig = inspect.signature(fn)
    hints = get_type_hints(fn, include_extras=True)
    fields: dict[str, Any] = {}
    for param in list(sig.parameters.values())[1:]:
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (hints[param.name], default)
    model = create_model(f"{fn.__name__}_args", __base__=_Args, **fields)
    doc = inspect.cleandoc(fn.__doc__ or "").strip()
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return Tool(fn.__name__, doc, model, fn, ToolSpec(fn.__name__, doc, schema))
