from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from luminaguard.errors import PlaybookError, UsageError
from luminaguard.llm.registry import open_provider
from luminaguard.llm.scripted import ScriptedProvider
from luminaguard.messages import Message
from tests.conftest import write_playbook


def test_it_replays_steps_in_order_whatever_it_is_sent(tmp_path: Path) -> None:
    pb = write_playbook(
        tmp_path / "p.json",
        [
            {"tool_calls": [{"name": "read_file", "arguments": {"path": "a"}}]},
            {"content": "Done."},
        ],
    )
    provider = open_provider(f"scripted/{pb}")
    first = asyncio.run(provider.complete([Message("user", "anything")], []))
    second = asyncio.run(provider.complete([], []))
    assert [c.name for c in first.tool_calls] == ["read_file"]
    assert first.tool_calls[0].arguments == {"path": "a"}
    assert first.tool_calls[0].id
    assert first.stop_reason == "tool_calls"
    assert second.content == "Done." and not second.tool_calls


def test_delay_ms_simulates_model_latency(tmp_path: Path) -> None:
    provider = ScriptedProvider.from_path(
        write_playbook(tmp_path / "p.json", [{"content": "x", "delay_ms": 120}])
    )
    started = time.monotonic()
    asyncio.run(provider.complete([], []))
    assert time.monotonic() - started >= 0.12


def test_running_past_the_last_step_is_a_clear_error(tmp_path: Path) -> None:
    provider = ScriptedProvider.from_path(write_playbook(tmp_path / "p.json", [{"content": "x"}]))
    asyncio.run(provider.complete([], []))
    with pytest.raises(PlaybookError, match="has no step 2"):
        asyncio.run(provider.complete([], []))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", "not valid JSON"),
        ('{"steps": []}', "steps"),
        ('{"steps": [{}]}', "needs tool_calls or content"),
        ('{"steps": [{"content": "x", "delay_ms": -1}]}', "delay_ms"),
        ('{"steps": [{"tool_calls": [{"arguments": {}}]}]}', "name"),
        ('{"step": []}', "step"),
    ],
)
def test_a_bad_playbook_is_one_clear_error(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "p.json"
    path.write_text(text)
    with pytest.raises(PlaybookError, match=expected):
        ScriptedProvider.from_path(path)


def test_a_missing_playbook_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PlaybookError, match="does not exist"):
        open_provider(f"scripted/{tmp_path / 'nope.json'}")


@pytest.mark.parametrize("spec", ["scripted", "nosuch/model", "scripted/"])
def test_bad_model_specs_are_usage_errors(spec: str) -> None:
    with pytest.raises(UsageError):
        open_provider(spec)
