"""The router against several scripted servers (one per deployment)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from luminaguard.config import RouterGroup, RouterSettings
from luminaguard.errors import AllAttemptsFailed, BadRequest
from luminaguard.llm.metrics import ProviderMetrics, summarise
from luminaguard.llm.openai_provider import OpenAIProvider
from luminaguard.llm.router import Router
from luminaguard.llm.scripted_server import ScriptedServer
from luminaguard.messages import AssistantTurn, Message

OK = {"content": "ok", "usage": {"input_tokens": 1000, "output_tokens": 500}}
MESSAGES = [Message("user", "hi")]


@pytest.fixture
def servers() -> Iterator[Any]:
    with ExitStack() as stack:

        def make(*steps: dict[str, Any]) -> ScriptedServer:
            return stack.enter_context(ScriptedServer(list(steps)))

        yield make


def router(
    deployments: dict[str, ScriptedServer],
    groups: dict[str, dict[str, Any]],
    tmp_path: Path,
    **settings: Any,
) -> tuple[Router, list[float], ProviderMetrics]:
    def factory(spec: str) -> OpenAIProvider:
        return OpenAIProvider(
            spec.split("/", 1)[1],
            base_url=deployments[spec].base_url + "/v1",
            api_key="k",
            timeout_s=settings.pop("timeout_s", 5),
        )

    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    metrics = ProviderMetrics(tmp_path / "m.db")
    config = RouterSettings(
        groups={k: RouterGroup(**v) for k, v in groups.items()}, **{"backoff_s": 0.01, **settings}
    )
    return (
        Router(config, factory, metrics=metrics, sleep=sleep, prices={"openai/a": (2.0, 8.0)}),
        slept,
        metrics,
    )


def ask(r: Router, task_type: str = "act") -> AssistantTurn:
    return asyncio.run(r.complete(MESSAGES, [], task_type=task_type))


def test_a_failed_attempt_is_retried_on_the_next_deployment(servers: Any, tmp_path: Path) -> None:
    a, b = servers({"error": {"status": 500}}), servers(OK)
    r, slept, metrics = router(
        {"openai/a": a, "openai/b": b}, {"main": {"models": ["openai/a", "openai/b"]}}, tmp_path
    )
    turn = ask(r)
    assert turn.content == "ok" and turn.provider == "openai/b"
    assert slept == [0.01]
    s = {row["model"]: row for row in summarise(metrics.rows())}
    assert s["a"]["errors"] == {"ServerError": 1} and s["b"]["successes"] == 1


def test_retry_after_is_honoured_up_to_the_cap(servers: Any, tmp_path: Path) -> None:
    a = servers(
        {"error": {"status": 429, "retry_after": 2.5}},
        {"error": {"status": 429, "retry_after": 99}},
        OK,
    )
    r, slept, _ = router(
        {"openai/a": a},
        {"main": {"models": ["openai/a"]}},
        tmp_path,
        max_backoff_s=10,
        allowed_fails=5,
    )
    assert ask(r).content == "ok"
    assert slept == [2.5, 10]


def test_an_exhausted_group_falls_back_to_the_next(servers: Any, tmp_path: Path) -> None:
    a = servers(*[{"error": {"status": 503}}] * 3)
    b = servers(OK)
    r, _, _ = router(
        {"openai/a": a, "openai/b": b},
        {
            "main": {"models": ["openai/a"], "fallbacks": ["backup"]},
            "backup": {"models": ["openai/b"]},
        },
        tmp_path,
        allowed_fails=10,
    )
    assert ask(r).provider == "openai/b"
    assert len(a.script.requests) == 3  # the first attempt and two retries


def test_a_context_too_long_goes_to_the_larger_context_group_without_retries(
    servers: Any, tmp_path: Path
) -> None:
    a = servers({"error": {"status": 400, "code": "context_length_exceeded"}}, OK)
    big = servers(OK)
    groups = {
        "main": {"models": ["openai/a"], "context_fallback": "long"},
        "long": {"models": ["openai/big"]},
    }
    r, slept, _ = router({"openai/a": a, "openai/big": big}, groups, tmp_path)
    assert ask(r).provider == "openai/big"
    assert len(a.script.requests) == 1 and slept == []


def test_a_4xx_is_returned_at_once(servers: Any, tmp_path: Path) -> None:
    a, b = servers({"error": {"status": 401, "message": "bad key"}}), servers(OK)
    r, _, _ = router(
        {"openai/a": a, "openai/b": b},
        {
            "main": {"models": ["openai/a", "openai/b"], "fallbacks": ["x"]},
            "x": {"models": ["openai/b"]},
        },
        tmp_path,
    )
    with pytest.raises(BadRequest):
        ask(r)
    assert b.script.requests == []


def test_a_failing_deployment_cools_down_even_when_it_failed_in_a_fallback_chain(
    servers: Any, tmp_path: Path
) -> None:
    shared = servers(*[{"error": {"status": 500}}] * 5)
    good = servers(OK, OK, OK)
    groups = {
        "main": {"models": ["openai/shared", "openai/good"]},
        "other": {"models": ["openai/shared"], "fallbacks": ["main"]},
    }
    r, _, _ = router(
        {"openai/shared": shared, "openai/good": good},
        groups,
        tmp_path,
        allowed_fails=2,
        cooldown_s=60,
        retries=1,
        routes={"plan": "other"},
    )
    # Both failures happen in `other`; the chain falls back to `main`, where the
    # same deployment, now cooling down, is skipped.
    assert ask(r, "plan").provider == "openai/good"
    before = len(shared.script.requests)
    assert before == 2
    # Cooling down: the next requests never reach it.
    assert ask(r).provider == "openai/good"
    assert ask(r).provider == "openai/good"
    assert len(shared.script.requests) == before


def test_a_chain_where_every_step_fails_says_what_happened(servers: Any, tmp_path: Path) -> None:
    a = servers(*[{"error": {"status": 500}}] * 3)
    b = servers(*[{"error": {"status": 429}}] * 3)
    groups = {
        "main": {"models": ["openai/a"], "fallbacks": ["backup"]},
        "backup": {"models": ["openai/b"]},
    }
    r, _, metrics = router(
        {"openai/a": a, "openai/b": b}, groups, tmp_path, retries=1, allowed_fails=10
    )
    with pytest.raises(AllAttemptsFailed, match="every attempt failed") as info:
        ask(r)
    assert "openai/a" in str(info.value) and "openai/b" in str(info.value)
    assert len(metrics.rows()) == 4


def test_routes_send_task_types_to_their_group(servers: Any, tmp_path: Path) -> None:
    planner, actor = servers(OK), servers(OK)
    r, _, metrics = router(
        {"openai/p": planner, "openai/a": actor},
        {"act": {"models": ["openai/a"]}, "plan": {"models": ["openai/p"]}},
        tmp_path,
        routes={"plan": "plan"},
    )
    assert ask(r, "plan").provider == "openai/p"
    assert ask(r, "act").provider == "openai/a"
    assert {(row["model"], row["task_type"]) for row in summarise(metrics.rows())} == {
        ("p", "plan"),
        ("a", "act"),
    }


def test_cost_comes_from_the_configured_prices(servers: Any, tmp_path: Path) -> None:
    r, _, metrics = router({"openai/a": servers(OK)}, {"main": {"models": ["openai/a"]}}, tmp_path)
    turn = ask(r)
    assert turn.cost_usd == pytest.approx((1000 * 2.0 + 500 * 8.0) / 1e6)
    metrics.mark(turn.request_id, True)
    s = summarise(metrics.rows())[0]
    assert s["cost_usd"] == pytest.approx(0.006) and s["win_rate"] == 1.0


def test_selection_skips_cooled_deployments_without_asking_them(tmp_path: Path) -> None:
    factory = functools.partial(lambda spec: None)
    settings = RouterSettings(
        groups={"g": RouterGroup(models=[f"openai/m{i}" for i in range(5)])}, cooldown_s=60
    )
    r = Router(settings, factory)  # type: ignore[arg-type]
    group = r.groups["g"]
    for d in group.deployments[:4]:
        d.cooldown_until = r.clock() + 60
    assert {r.select(group).spec for _ in range(3)} == {"openai/m4"}  # type: ignore[union-attr]
    group.deployments[4].cooldown_until = r.clock() + 60
    assert r.select(group) is None
