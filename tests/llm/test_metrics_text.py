"""The Prometheus text: each bucket, count, sum and
counter must equal what the recorded requests say, computed here by hand."""

from __future__ import annotations

import random
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from luminaguard.llm.metrics import ProviderMetrics
from luminaguard.messages import AssistantTurn, Usage
from luminaguard.metrics import DURATION_BUCKETS, TOKEN_BUCKETS, prometheus_text


def test_every_number_matches_the_requests(tmp_path: Path) -> None:
    store = ProviderMetrics(tmp_path / "metrics.db")
    rng = random.Random(7)
    recorded = []
    for i in range(500):
        ok = rng.random() > 0.2
        duration = rng.choice([0.005, 0.02, 0.3, 1.5, 9.0, 100.0]) * rng.random()
        tokens = (rng.randrange(0, 5000), rng.randrange(0, 500))
        turn = (
            AssistantTurn(content="x", usage=Usage(*tokens), cost_usd=0.01, ttft_s=0.05)
            if ok
            else None
        )
        spec = rng.choice(["openai/a", "anthropic/b"])
        task = rng.choice(["plan", "act"])
        store.record(
            request_id=f"r{i}", spec=spec, task_type=task, duration_s=duration, turn=turn,
            error_type=None if ok else "timeout",
        )  # fmt: skip
        won = ok and rng.random() > 0.5
        store.mark(f"r{i}", won)
        recorded.append((spec.split("/"), task, ok, duration, tokens, won))
    text = prometheus_text(store.rows())
    store.close()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }

    def sample(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    for (provider, model), error in [(("openai", "a"), ""), (("anthropic", "b"), "timeout")]:
        mine = [r for r in recorded if r[0] == [provider, model] and (r[2] == (error == ""))]
        base = {"gen_ai_provider_name": provider, "gen_ai_request_model": model,
                "gen_ai_operation_name": "chat", "error_type": error}  # fmt: skip
        name = "gen_ai_client_operation_duration_seconds"
        for bound in DURATION_BUCKETS:
            expected = sum(1 for r in mine if r[3] <= bound)
            assert sample(f"{name}_bucket", **base, le=str(bound)) == expected
        assert sample(f"{name}_count", **base) == len(mine)
        assert abs(sample(f"{name}_sum", **base) - sum(r[3] for r in mine)) < 1e-6
    ok_a = [r for r in recorded if r[0] == ["openai", "a"] and r[2]]
    tokens = {"gen_ai_provider_name": "openai", "gen_ai_request_model": "a",
              "gen_ai_operation_name": "chat", "gen_ai_token_type": "input"}  # fmt: skip
    for bound in TOKEN_BUCKETS:
        expected = sum(1 for r in ok_a if r[4][0] <= bound)
        assert sample("gen_ai_client_token_usage_bucket", **tokens, le=str(bound)) == expected
    for task in ("plan", "act"):
        rs = [r for r in recorded if r[0] == ["openai", "a"] and r[1] == task]
        labels = {"gen_ai_provider_name": "openai", "gen_ai_request_model": "a", "task_type": task}
        successes = sum(1 for r in rs if r[2])
        assert sample("luminaguard_gen_ai_requests_total", **labels, outcome="success") == successes
        assert (
            sample("luminaguard_gen_ai_requests_total", **labels, outcome="error")
            == len(rs) - successes
        )
        won = sum(1 for r in rs if r[2] and r[5])
        assert sample("luminaguard_gen_ai_win_rate", **labels) == round(won / successes, 4)
