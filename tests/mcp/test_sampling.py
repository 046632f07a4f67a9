"""A sampling request as the run's provider sees it (the end-to-end run is in
test_cli.py: test_a_servers_sampling_request_goes_through_the_cliff...)."""

from __future__ import annotations

import asyncio
from typing import Any

from mcp import types

from luminaguard.llm.scripted import Playbook, ScriptedProvider
from luminaguard.mcp.sampling import SamplingSource, request_arguments
from luminaguard.messages import AssistantTurn, ToolCall


class Recording(ScriptedProvider):
    """The scripted provider, keeping what each request asked for."""

    def __init__(self) -> None:
        super().__init__(Playbook.model_validate({"steps": [{"content": "a reply"}]}))
        self.asked: list[dict[str, Any]] = []

    async def complete(self, messages: Any, tools: Any, **kwargs: Any) -> AssistantTurn:
        self.asked.append({"messages": list(messages), **kwargs})
        return await super().complete(messages, tools, **kwargs)


def test_a_sampling_request_reaches_the_provider_with_its_limit_and_task_type() -> None:
    params = types.CreateMessageRequestParams(
        messages=[
            types.SamplingMessage(role="user", content=types.TextContent(type="text", text="hi")),
            types.SamplingMessage(
                role="user",
                content=types.ImageContent(type="image", data="AA==", mime_type="image/png"),
            ),
        ],
        system_prompt="be brief",
        max_tokens=60,
    )
    provider = Recording()
    counted: list[AssistantTurn] = []
    source = SamplingSource("srv", provider, counted.append)
    args = request_arguments(params)
    assert args["messages"][1]["text"] == "[image content not passed on]"
    assert source.assess(ToolCall("1", "sampling:srv", args)).risk.label == "yellow"
    result = asyncio.run(source.call(ToolCall("1", "sampling:srv", args)))
    assert result.output == "a reply" and len(counted) == 1
    [asked] = provider.asked
    assert asked["max_tokens"] == 60 and asked["task_type"] == "sampling"
    assert [m.role for m in asked["messages"]] == ["system", "user", "user"]
