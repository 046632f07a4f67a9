from __future__ import annotations

from pathlib import Path

import pytest

from luminaguard.errors import QuotaExceeded
from luminaguard.policy.ratelimit import Limit, Limiter, Subject

RUN = Subject("run-1", "agent-1")


def test_a_tool_bucket_empties_and_refuses_with_a_retry_hint(tmp_path: Path) -> None:
    limiter = Limiter(
        tmp_path / "s.db", (Limit(scope="tool", name="shell", capacity=2, refill_per_s=0.01),)
    )
    limiter.take(RUN, "tools", "shell")
    limiter.take(RUN, "tools", "shell")
    with pytest.raises(QuotaExceeded, match=r"try again in \d+ s"):
        limiter.take(RUN, "tools", "shell")
    limiter.take(RUN, "tools", "read_file")  # another tool is not limited


def test_buckets_persist_across_restarts(tmp_path: Path) -> None:
    limit = (Limit(scope="tool", name="shell", capacity=1),)
    Limiter(tmp_path / "s.db", limit).take(RUN, "tools", "shell")
    with pytest.raises(QuotaExceeded, match="does not refill"):
        Limiter(tmp_path / "s.db", limit).take(RUN, "tools", "shell")


def test_run_quotas_are_per_run(tmp_path: Path) -> None:
    limiter = Limiter(tmp_path / "s.db", (Limit(scope="run", capacity=1),))
    limiter.take(RUN, "tools", "shell")
    with pytest.raises(QuotaExceeded):
        limiter.take(RUN, "tools", "write_file")
    limiter.take(Subject("run-2", "agent-1"), "tools", "shell")


def test_model_spend_per_run_blocks_once_overdrawn(tmp_path: Path) -> None:
    limiter = Limiter(
        tmp_path / "s.db", (Limit(scope="run", on="models", counts="cost_usd", capacity=1.0),)
    )
    limiter.take(RUN, "models", "openai", {"cost_usd": 0.6})
    limiter.take(RUN, "models", "openai", {"cost_usd": 0.6})  # overdraws once
    with pytest.raises(QuotaExceeded):
        limiter.take(RUN, "models", "openai", {"cost_usd": 0.01})


def test_a_refused_take_spends_nothing(tmp_path: Path) -> None:
    limits = (Limit(scope="tool", name="shell", capacity=5), Limit(scope="run", capacity=1))
    limiter = Limiter(tmp_path / "s.db", limits)
    limiter.take(RUN, "tools", "shell")
    with pytest.raises(QuotaExceeded):
        limiter.take(RUN, "tools", "shell")
    # The shell bucket still has 4: a new run can use it.
    for _ in range(4):
        limiter.take(Subject(f"run-{_ + 10}", "a"), "tools", "shell")
