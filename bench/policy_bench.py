"""Static classification latency per action, and what the gate adds to a GREEN action.

    python bench/policy_bench.py [--n 2000] [--json]

- classification: every action of the labelled test corpus, classified in
  turn (p50/p95/p99 per action), beside a baseline of `json.dumps` of the
  same action measured in the same run;
- gate: a GREEN `read_file` through `ApprovalManager.run` vs calling the tool
  directly, same workspace, same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from luminaguard.config import SandboxSettings
from luminaguard.messages import ToolCall
from luminaguard.policy.approver import Unattended
from luminaguard.policy.classify import classify_action
from luminaguard.policy.gate import ApprovalManager, GateContext
from luminaguard.policy.grants import GrantStore
from luminaguard.policy.policyfile import Policy
from luminaguard.sandbox.bwrap import BwrapSandbox
from luminaguard.sandbox.workspace import Workspace
from luminaguard.stats import percentiles
from luminaguard.tools.builtin import BuiltinTools
from tests.policy.corpus import BENIGN_SHELL, BENIGN_TOOLS, RISKY, make_workspace


def classification(ws: Workspace, n: int) -> dict[str, Any]:
    actions = (
        [("shell", {"command": c}) for c in BENIGN_SHELL]
        + BENIGN_TOOLS
        + [(t, a) for t, a, _ in RISKY]
    )
    for tool, args in actions:  # warm the parser
        classify_action(tool, args, ws=ws)
    base, took = [], []
    for i in range(n):
        tool, args = actions[i % len(actions)]
        t = time.perf_counter()
        json.dumps(args)
        base.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        classify_action(tool, args, ws=ws)
        took.append((time.perf_counter() - t) * 1000)
    return {
        "actions": len(actions),
        "classify": percentiles(took),
        "baseline_json_dumps": percentiles(base),
    }


async def gate(root: Path, n: int) -> dict[str, Any]:
    sandbox = BwrapSandbox(root, SandboxSettings(pool_size=0))
    tools = BuiltinTools(sandbox)
    with tempfile.TemporaryDirectory() as state:
        grants = GrantStore(Path(state) / "state.db")
        m = ApprovalManager(
            Policy(),
            Unattended(),
            grants=grants,
            context=GateContext("bench", str(root)),
            record=lambda k, d: None,
            report=lambda e, d: None,
        )
        call = ToolCall("c", "read_file", {"path": "README.md"})
        direct, gated = [], []
        for _ in range(n):
            t = time.perf_counter()
            await tools.call(call)
            direct.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            await m.run(call, tools)
            gated.append((time.perf_counter() - t) * 1000)
        grants.close()
    d, g = percentiles(direct), percentiles(gated)
    return {"direct": d, "gated": g, "added_p50_ms": round(g["p50_ms"] - d["p50_ms"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = make_workspace(Path(tmp))
        result = {
            "classification": classification(Workspace(root), args.n),
            "gate_green": asyncio.run(gate(root, args.n)),
        }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    c = result["classification"]
    print(
        f"classify ({c['actions']} corpus actions)  p50 {c['classify']['p50_ms']:.3f} ms  p95 {c['classify']['p95_ms']:.3f} ms  p99 {c['classify']['p99_ms']:.3f} ms"
    )
    print(f"baseline json.dumps            p50 {c['baseline_json_dumps']['p50_ms']:.4f} ms")
    g = result["gate_green"]
    print(
        f"GREEN read_file direct p50 {g['direct']['p50_ms']:.3f} ms, through the gate p50 {g['gated']['p50_ms']:.3f} ms: adds {g['added_p50_ms']:.3f} ms"
    )


if __name__ == "__main__":
    main()
