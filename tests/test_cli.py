"""The command-line contract, through the real entry point in a child process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from luminaguard import __version__
from tests.conftest import LUMINAGUARD, missing, trust_config, write_playbook


def lg(
    *args: str, cwd: Path | None = None, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LUMINAGUARD, *args],
        capture_output=True,
        encoding="utf-8",
        input=stdin,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


def assert_clean_error(r: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("luminaguard: error: ")
    assert fragment in lines[0]


def test_version() -> None:
    r = lg("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"luminaguard {__version__}"


def test_help_does_not_import_heavy_libraries() -> None:
    code = "import sys, luminaguard.cli as c; c.build_parser().format_help(); print(sorted(m for m in ('pydantic', 'asyncio', 'sqlite3') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, encoding="utf-8", check=True
    )
    assert out.stdout.strip() == "[]"


def test_doctor_json_reports_each_check_with_a_reason() -> None:
    r = lg("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert {
        "python",
        "bubblewrap",
        "user namespaces",
        "seccomp",
        "gvisor",
        "kvm",
        "qemu",
        "microvm",
        "node",
        "temporal",
    } <= set(checks)
    for c in checks.values():
        assert c["status"] in {"ok", "warn", "missing", "failed", "unknown"}
        assert c["detail"]
    assert checks["python"]["status"] == "ok"
    assert r.returncode == (0 if checks["bubblewrap"]["status"] == "ok" else 1)
    # Which host uid a sandbox's user is, said either way: never root.
    from luminaguard.sandbox.hostuser import HOST_ID

    assert checks["sandbox user"]["status"] == "ok"
    expected = HOST_ID if os.geteuid() == 0 else os.geteuid()
    assert f"host uid {expected}" in checks["sandbox user"]["detail"]
    # The accelerator a micro-VM would get, said plainly: KVM only where it is real.
    from luminaguard.vm.qemu import kvm_kind

    if kvm_kind() != "real":
        assert checks["kvm"]["status"] != "ok"
        assert "TCG" in checks["kvm"]["detail"] or "TCG" in checks["microvm"]["detail"]


def test_run_with_a_playbook_ends_by_printing_the_journal(workspace: Path, tmp_path: Path) -> None:
    (workspace / "README.md").write_text("# hi\n")
    pb = write_playbook(
        tmp_path / "p.json",
        [
            {"tool_calls": [{"name": "read_file", "arguments": {"path": "README.md"}}]},
            {"content": "Read it."},
        ],
    )
    r = lg("run", "read the readme", "--workspace", str(workspace), "--playbook", str(pb))
    assert r.returncode == 0, r.stderr
    assert "Read it." in r.stdout
    journal = next(
        line.split()[-1] for line in r.stdout.splitlines() if line.strip().startswith("journal ")
    )
    assert Path(journal).is_file()
    listed = json.loads(lg("audit", "list", "--json").stdout)
    assert [run["path"] for run in listed] == [journal]
    assert set(listed[0]) == {"id", "task", "started", "outcome", "status", "path"}
    assert listed[0]["status"] == listed[0]["outcome"] == "finished"
    assert listed[0]["outcome"] == "finished" and listed[0]["task"] == "read the readme"


def test_a_write_with_no_terminal_and_no_policy_is_denied(workspace: Path, tmp_path: Path) -> None:
    pb = write_playbook(
        tmp_path / "p.json",
        [
            {"tool_calls": [{"name": "write_file", "arguments": {"path": "x", "content": "y"}}]},
            {"content": "ok"},
        ],
    )
    r = lg("run", "write", "--workspace", str(workspace), "--model", f"scripted/{pb}")
    assert r.returncode == 0
    assert "denied by unattended" in r.stdout
    assert not (workspace / "x").exists()


def test_the_step_limit_has_its_own_exit_code(workspace: Path, tmp_path: Path) -> None:
    pb = write_playbook(
        tmp_path / "p.json", [{"tool_calls": [{"name": "list_dir", "arguments": {}}]}] * 3
    )
    r = lg("run", "loop", "--workspace", str(workspace), "--playbook", str(pb), "--max-steps", "2")
    assert r.returncode == 3
    assert "limits_exceeded" in r.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["run", "task"], "no model"),
        (["run", "task", "--model", "gpt4"], "is not PROVIDER/MODEL"),
        (["run", "task", "--model", "nosuch/x"], "unknown provider 'nosuch'"),
        (["run", "task", "--playbook", "/nonexistent/p.json"], "does not exist"),
        (["run", "task", "--playbook", "p.json", "--sandbox", "nosuch"], "known backends: bwrap"),
        (
            ["run", "task", "--playbook", "p.json", "--policy", "/nonexistent.toml"],
            "does not exist",
        ),
        (["run", "task", "--workspace", "/nonexistent-dir"], "is not a directory"),
        (["frobnicate"], "invalid choice"),
        (["audit", "show", "nope"], "no run 'nope'"),
        (["sandbox", "exec"], "no command"),
        (["sandbox", "exec", "--network", "bogus", "--", "true"], "unknown network mode"),
        (["sandbox", "preview"], "no command"),
        (["pool", "bench", "--n", "0"], "at least 1"),
    ],
)
def test_user_mistakes_are_one_clear_sentence(
    args: list[str], fragment: str, workspace: Path, tmp_path: Path
) -> None:
    write_playbook(workspace / "p.json", [{"content": "x"}])
    r = lg(*args, cwd=workspace)
    assert_clean_error(r, fragment)


def test_a_bad_config_file_is_one_clear_sentence(workspace: Path) -> None:
    (workspace / "luminaguard.toml").write_text("[agent]\nmax_steps = 'x'\n")
    r = lg("run", "task", "--playbook", "p.json", cwd=workspace)
    assert_clean_error(r, "agent.max_steps")


def test_sandbox_exec_passes_the_exit_code_through(workspace: Path) -> None:
    r = lg("sandbox", "exec", "--workspace", str(workspace), "--", "sh", "-c", "echo hi; exit 5")
    assert r.returncode == 5 and r.stdout == "hi\n"


def test_the_demo_runs_offline_and_its_journal_verifies(
    tmp_path: Path, sandbox_backend: str
) -> None:
    """On every backend: its previews, cards and commits are the same."""
    ws = tmp_path / "demo"
    r = lg("demo", "--workspace", str(ws), "--sandbox", sandbox_backend)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "FAIL: test_average" in r.stdout
    assert "+    return sum(values) / len(values)" in r.stdout
    assert "approved by policy" in r.stdout
    assert "journal " in r.stdout
    assert "len(values) + 1" not in (ws / "calc.py").read_text()
    tests = subprocess.run(
        [sys.executable, "-m", "unittest"], cwd=ws, capture_output=True, check=False
    )
    assert tests.returncode == 0
    v = lg("audit", "verify", "--json")
    assert v.returncode == 0 and json.loads(v.stdout)["ok"] is True


def test_audit_verify_exits_non_zero_and_says_where(workspace: Path, tmp_path: Path) -> None:
    pb = write_playbook(tmp_path / "p.json", [{"content": "done"}])
    assert lg("run", "t", "--workspace", str(workspace), "--playbook", str(pb)).returncode == 0
    run = json.loads(lg("audit", "list", "--json").stdout)[0]
    path = Path(run["path"])
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace('"t"', '"tampered"')
    path.write_text("\n".join(lines) + "\n")
    r = lg("audit", "verify", run["id"])
    assert r.returncode == 1
    assert "line 2:" in r.stdout and "edited" in r.stdout
    shown = json.loads(lg("audit", "show", run["id"], "--json").stdout)
    assert shown["run"]["id"] == run["id"] and len(shown["records"]) == len(lines)


def test_sandbox_preview_json_reports_effects_and_leaves_the_workspace(workspace: Path) -> None:
    (workspace / "a.txt").write_text("one\n")
    (workspace / "gone.txt").write_text("bye\n")
    r = lg(
        "sandbox",
        "preview",
        "--workspace",
        str(workspace),
        "--json",
        "--",
        "sh",
        "-c",
        "echo two >> a.txt; rm gone.txt; echo n > new.txt",
    )
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["created"] == ["new.txt"]
    assert data["modified"][0]["path"] == "a.txt" and "+two" in data["modified"][0]["diff"]
    assert data["deleted"] == ["gone.txt"]
    assert data["network"] == [] and data["exit_code"] == 0
    assert data["risk"] == "orange"
    assert {"stdout", "stderr"} <= set(data)
    assert (workspace / "a.txt").read_text() == "one\n" and (workspace / "gone.txt").exists()
    assert not (workspace / "new.txt").exists()


def test_sandbox_preview_commit_applies_the_changes(workspace: Path) -> None:
    r = lg(
        "sandbox",
        "preview",
        "--workspace",
        str(workspace),
        "--commit",
        "--",
        "sh",
        "-c",
        "echo n > new.txt",
    )
    assert r.returncode == 0, r.stderr
    assert "+ new.txt" in r.stdout and "🟡 YELLOW" in r.stdout
    assert (workspace / "new.txt").read_text() == "n\n"


def test_pool_bench_json_has_every_measurement_of_the_contract() -> None:
    r = lg("pool", "bench", "--n", "3", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    for name in ("baseline_subprocess", "cold", "cold_spaced", "warm", "preview"):
        assert {"p50_ms", "p95_ms", "p99_ms"} <= set(data[name])
        assert data[name]["p50_ms"] > 0


def test_classify_reads_json_lines_and_answers_one_line_each(workspace: Path) -> None:
    (workspace / "notes.txt").write_text("x")
    lines = [
        {"tool": "shell", "args": {"command": "rm -rf build"}},
        {"tool": "shell", "args": {"command": "ls -la"}},
        {"tool": "write_file", "args": {"path": "notes.txt", "content": "y"}},
        {"tool": "write_file", "args": {"path": "new.txt", "content": "y"}},
        {"tool": "delete_file", "args": {"path": "/etc/passwd"}},
        {
            "tool": "mcp:github/merge_pull_request",
            "args": {},
            "annotations": {"readOnlyHint": True, "openWorldHint": False},
        },
    ]
    stdin = "\n".join(json.dumps(x) for x in lines) + "\nnot json\n"
    r = lg("classify", "--workspace", str(workspace), stdin=stdin)
    out = [json.loads(line) for line in r.stdout.splitlines()]
    assert [o["risk"] for o in out] == ["orange", "green", "orange", "yellow", "red", "red", "red"]
    assert all(o["reasons"] for o in out)
    assert "error" in out[-1]
    assert r.returncode == 1 and "could not be read" in r.stderr


def test_classify_trusts_annotations_of_servers_marked_trusted(workspace: Path) -> None:
    (workspace / "luminaguard.toml").write_text(
        '[mcp.servers.github]\nurl = "http://127.0.0.1:9/mcp"\ntrusted = true\n'
    )
    trust_config(workspace)
    line = {
        "tool": "mcp:github/list_issues",
        "args": {},
        "annotations": {"readOnlyHint": True, "openWorldHint": False},
    }
    r = lg("classify", "--workspace", str(workspace), stdin=json.dumps(line) + "\n")
    assert json.loads(r.stdout)["risk"] == "green"


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_run_drives_a_real_sdk_end_to_end_and_metrics_report_it(kind: str, workspace: Path) -> None:
    from luminaguard.llm.scripted_server import ScriptedServer

    (workspace / "README.md").write_text("# project\n")
    steps = [
        {
            "content": "Reading.",
            "tool_calls": [
                {"name": "read_file", "arguments": {"path": "README.md"}},
                {"name": "list_dir", "arguments": {}},
            ],
        },
        {"content": "It is a project."},
    ]
    with ScriptedServer(steps) as server:
        env = (
            {"OPENAI_BASE_URL": server.base_url + "/v1", "OPENAI_API_KEY": "k"}
            if kind == "openai"
            else {"ANTHROPIC_BASE_URL": server.base_url, "ANTHROPIC_API_KEY": "k"}
        )
        model = "openai/gpt-test" if kind == "openai" else "anthropic/claude-test"
        r = lg("run", "what is this?", "--workspace", str(workspace), "--model", model, env=env)
        sent = server.script.requests
    assert r.returncode == 0, r.stdout + r.stderr
    assert "It is a project." in r.stdout
    # The second request carries both tool results back.
    second = json.dumps(sent[1]["body"])
    assert "# project" in second and "README.md" in second
    data = json.loads(lg("metrics", "--format", "json").stdout)
    rows = {(p["provider"], p["task_type"]): p for p in data["providers"]}
    assert rows[(kind, "plan")]["requests"] == 1 and rows[(kind, "act")]["requests"] == 1
    assert rows[(kind, "plan")]["win_rate"] == 1.0 and rows[(kind, "act")]["win_rate"] == 1.0
    assert rows[(kind, "plan")]["latency_s"]["p95"] is not None
    prom = lg("metrics", "--format", "prometheus").stdout
    assert (
        f'gen_ai_client_operation_duration_seconds_bucket{{error_type="",gen_ai_operation_name="chat",gen_ai_provider_name="{kind}"'
        in prom
    )
    assert 'le="0.01"' in prom and 'le="81.92"' in prom
    assert "gen_ai_client_token_usage_bucket{" in prom and 'gen_ai_token_type="input"' in prom
    assert lg("metrics", "--since", "1h").returncode == 0
    assert json.loads(lg("metrics", "--until", "0", "--format", "json").stdout)["providers"] == []
    # For a person, a table by default; median and p50 are one number.
    table = lg("metrics", "--since", "2000-01-01").stdout.splitlines()
    assert table[0].split()[:4] == ["provider", "model", "task", "requests"]
    assert any(line.split()[:3] == [kind, model.split("/", 1)[1], "plan"] for line in table[1:])
    for p in data["providers"]:
        assert p["latency_s"]["median"] == p["latency_s"]["p50"]
    assert "no model requests" in lg("metrics", "--until", "1970-01-02").stdout
    bad = lg("metrics", "--since", "last tuesday")
    assert bad.returncode == 2 and "a date like 2026-12-01" in bad.stderr


def test_a_missing_api_key_is_one_clear_sentence(workspace: Path) -> None:
    env = {k: "" for k in ("OPENAI_API_KEY",)}
    r = subprocess.run(
        [*LUMINAGUARD, "run", "t", "--workspace", str(workspace), "--model", "openai/gpt-4o"],
        capture_output=True,
        encoding="utf-8",
        env={k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")},
        timeout=60,
        check=False,
    )
    assert_clean_error(r, "OPENAI_API_KEY is not set")
    assert env


def test_an_interrupted_run_resumes_without_repeating_a_completed_call(
    workspace: Path, tmp_path: Path
) -> None:
    import signal
    import time

    pb = write_playbook(
        tmp_path / "p.json",
        [
            {"tool_calls": [{"name": "shell", "arguments": {"command": "echo once >> count.txt"}}]},
            {"tool_calls": [{"name": "shell", "arguments": {"command": "sleep 60"}}]},
            {"content": "Counted."},
        ],
    )
    policy = tmp_path / "policy.toml"
    policy.write_text('auto_approve = ["green", "yellow", "orange"]\n')
    proc = subprocess.Popen(
        [
            *LUMINAGUARD,
            "run",
            "count",
            "--workspace",
            str(workspace),
            "--playbook",
            str(pb),
            "--policy",
            str(policy),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        encoding="utf-8",
    )
    try:
        deadline = time.monotonic() + 60
        journal = None
        while time.monotonic() < deadline:
            listed = json.loads(lg("audit", "list", "--json").stdout)
            if listed:
                journal = Path(listed[0]["path"])
                # Killed while the second call (a slow, approved command) runs.
                if journal.exists() and journal.read_text().count('"type": "decision"') == 2:
                    break
            time.sleep(0.05)
        assert journal is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
    run_id = json.loads(lg("audit", "list", "--json").stdout)[0]["id"]
    assert (workspace / "count.txt").read_text() == "once\n"
    r = lg("run", "--resume", run_id, "--policy", str(policy))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Counted." in r.stdout
    assert (workspace / "count.txt").read_text() == "once\n", "a completed call was repeated"
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    interrupted = [
        r for r in records if r["type"] == "tool_result" and r["data"]["stage"] == "interrupted"
    ]
    assert (
        len(interrupted) == 1
        and "may or may not have taken effect" in interrupted[0]["data"]["output"]
    )
    assert lg("audit", "verify", run_id).returncode == 0
    again = lg("run", "--resume", run_id)
    assert_clean_error(again, "already ended")


@pytest.fixture
def mcp_workspace(workspace: Path) -> Path:
    from luminaguard.errors import ConfigError
    from luminaguard.mcp.launch import resolve_npx
    from tests.mcp.conftest import CACHE, PACKAGES

    try:
        for package in PACKAGES.values():
            resolve_npx(package, CACHE)
    except ConfigError as exc:
        missing(f"the reference MCP servers could not be installed from npm: {exc}")
    (workspace / "luminaguard.toml").write_text(
        f"""
[mcp]
cache_dir = "{CACHE}"
[mcp.servers.everything]
command = "npx"
args = ["-y", "@modelcontextprotocol/server-everything", "stdio"]
trusted = true
[mcp.servers.memory]
command = "npx"
args = ["-y", "@modelcontextprotocol/server-memory"]
env = {{ MEMORY_FILE_PATH = "/workspace/memory.jsonl" }}
workspace = "write"
"""
    )
    trust_config(workspace)
    return workspace


def test_mcp_list_tools_and_call(mcp_workspace: Path) -> None:
    listed = json.loads(lg("mcp", "list", "--json", cwd=mcp_workspace).stdout)
    assert [(s["name"], s["sandboxed"], s["trusted"]) for s in listed] == [
        ("everything", True, True),
        ("memory", True, False),
    ]
    tools = json.loads(lg("mcp", "tools", "everything", "--json", cwd=mcp_workspace).stdout)
    echo = next(t for t in tools if t["name"] == "mcp:everything/echo")
    assert echo["risk"] == "green" and echo["annotations"]["readOnlyHint"] is True
    r = lg("mcp", "call", "everything", "get-sum", '{"a": 20, "b": 22}', cwd=mcp_workspace)
    assert r.returncode == 0 and "42" in r.stdout
    runs = json.loads(lg("audit", "list", "--json").stdout)
    assert runs[-1]["task"] == "mcp call everything/get-sum" and runs[-1]["outcome"] == "finished"
    assert lg("audit", "verify", runs[-1]["id"]).returncode == 0


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["mcp", "tools", "nosuch"], "no MCP server 'nosuch'"),
        (["mcp", "call", "everything", "echo", "{bad"], "not valid JSON"),
        (["mcp", "call", "everything", "echo", "[1]"], "must be a JSON object"),
    ],
)
def test_mcp_mistakes_are_one_sentence(mcp_workspace: Path, args: list[str], fragment: str) -> None:
    assert_clean_error(lg(*args, cwd=mcp_workspace), fragment)


def test_an_agent_uses_mcp_tools_under_the_approval_cliff(
    mcp_workspace: Path, tmp_path: Path
) -> None:
    pb = write_playbook(
        tmp_path / "p.json",
        [
            {"tool_calls": [{"name": "mcp:everything/get-sum", "arguments": {"a": 1, "b": 2}}]},
            {
                "tool_calls": [
                    {
                        "name": "mcp:memory/create_entities",
                        "arguments": {
                            "entities": [{"name": "x", "entityType": "t", "observations": []}]
                        },
                    }
                ]
            },
            {"content": "done"},
        ],
    )
    r = lg("run", "use mcp", "--workspace", str(mcp_workspace), "--playbook", str(pb))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "MCP server everything" in r.stdout and "sandboxed" in r.stdout
    assert "The sum of 1 and 2 is 3." in json.dumps(
        json.loads(
            lg(
                "audit",
                "show",
                json.loads(lg("audit", "list", "--json").stdout)[-1]["id"],
                "--json",
            ).stdout
        )
    )
    # Untrusted server, no annotations believed: RED, and nobody to ask.
    assert "denied by unattended" in r.stdout
    assert not (mcp_workspace / "memory.jsonl").exists()


def test_mcp_resources_and_prompts_are_listed_and_readable(mcp_workspace: Path) -> None:
    resources = json.loads(lg("mcp", "resources", "everything", "--json", cwd=mcp_workspace).stdout)
    assert resources and all("uri" in r for r in resources)
    first = resources[0]["uri"]
    text = lg("mcp", "read", "everything", first, cwd=mcp_workspace)
    assert text.returncode == 0 and text.stdout.strip()
    prompts = json.loads(lg("mcp", "prompts", "everything", "--json", cwd=mcp_workspace).stdout)
    assert "simple-prompt" in {p["name"] for p in prompts}


def test_mcp_prompt_renders_a_prompt_with_its_arguments(mcp_workspace: Path) -> None:
    listed = json.loads(lg("mcp", "prompts", "everything", "--json", cwd=mcp_workspace).stdout)
    args_prompt = next(p for p in listed if any(a.get("required") for a in p.get("arguments", [])))
    required = [a["name"] for a in args_prompt["arguments"] if a.get("required")]
    values = [f"{name}=value-of-{name}" for name in required]
    r = lg("mcp", "prompt", "everything", args_prompt["name"], *values, cwd=mcp_workspace)
    assert r.returncode == 0, r.stderr
    assert "[user]" in r.stdout
    assert all(f"value-of-{name}" in r.stdout for name in required)  # the arguments went in
    as_json = json.loads(
        lg(
            "mcp", "prompt", "everything", args_prompt["name"], *values, "--json", cwd=mcp_workspace
        ).stdout
    )
    assert as_json["messages"][0]["role"] == "user"
    # Mistakes are one sentence each, naming what the prompt takes.
    r = lg("mcp", "prompt", "everything", args_prompt["name"], cwd=mcp_workspace)
    assert r.returncode == 2 and f"missing: {required[0]}" in r.stderr, r.stderr
    r = lg("mcp", "prompt", "everything", "no-such-prompt", cwd=mcp_workspace)
    assert r.returncode == 2 and "its prompts: " in r.stderr and args_prompt["name"] in r.stderr
    r = lg("mcp", "prompt", "everything", args_prompt["name"], "novalue", cwd=mcp_workspace)
    assert r.returncode == 2 and "KEY=VALUE" in r.stderr


def test_a_broken_mcp_server_does_not_sink_the_run(workspace: Path, tmp_path: Path) -> None:
    (workspace / "luminaguard.toml").write_text(
        '[mcp.servers.broken]\ncommand = "/usr/bin/python3"\nargs = ["-c", "import sys; sys.exit(3)"]\n'
    )
    trust_config(workspace)
    pb = write_playbook(
        tmp_path / "p.json",
        [{"tool_calls": [{"name": "list_dir", "arguments": {}}]}, {"content": "done"}],
    )
    r = lg("run", "t", "--workspace", str(workspace), "--playbook", str(pb))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "MCP server broken is unavailable" in r.stdout


def test_a_tool_the_server_adds_mid_run_is_offered_and_recorded(
    workspace: Path, tmp_path: Path
) -> None:
    server = Path(__file__).parent / "mcp" / "changing_server.py"
    (workspace / "luminaguard.toml").write_text(
        f'[mcp.servers.chg]\ncommand = "{sys.executable}"\nargs = ["{server}"]\ntrusted = true\n'
    )
    trust_config(workspace)
    pb = write_playbook(
        tmp_path / "p.json",
        [
            {"tool_calls": [{"name": "mcp:chg/unlock", "arguments": {}}]},
            {"tool_calls": [{"name": "mcp:chg/secret", "arguments": {}}]},
            {"content": "done"},
        ],
    )
    r = lg("run", "t", "--workspace", str(workspace), "--playbook", str(pb))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "tools changed: added mcp:chg/secret" in r.stdout
    run_id = json.loads(lg("audit", "list", "--json").stdout)[-1]["id"]
    shown = lg("audit", "show", run_id, "--json").stdout
    assert "the secret is 42" in shown and "tools_changed" in shown


@pytest.mark.parametrize("approve_yellow", [True, False])
def test_a_servers_sampling_request_goes_through_the_cliff_to_the_runs_model(
    mcp_workspace: Path, tmp_path: Path, approve_yellow: bool
) -> None:
    config = mcp_workspace / "luminaguard.toml"
    config.write_text(config.read_text().replace("trusted = true\n", "sampling = true\n", 1))
    trust_config(config.parent)
    policy = tmp_path / "policy.toml"
    policy.write_text(
        f"auto_approve = {json.dumps(['green', 'yellow'] if approve_yellow else ['green'])}\n"
        '[[grants]]\ntool = "mcp:everything/trigger-sampling-request"\nmax_risk = "red"\nhours = 1\n'
    )
    pb = write_playbook(
        tmp_path / "p.json",
        [
            {
                "tool_calls": [
                    {
                        "name": "mcp:everything/trigger-sampling-request",
                        "arguments": {"prompt": "Write a haiku about sandboxes", "maxTokens": 60},
                    }
                ]
            },
            # Answers the server's sampling request (when it is approved).
            {"content": "walls of namespace / the process cannot wander / seccomp hums softly"},
            {"content": "done"},
        ],
    )
    if not approve_yellow:
        pb.write_text(
            json.dumps({"steps": [json.loads(pb.read_text())["steps"][i] for i in (0, 2)]})
        )
    r = lg(
        "run",
        "t",
        "--workspace",
        str(mcp_workspace),
        "--playbook",
        str(pb),
        "--policy",
        str(policy),
    )
    assert r.returncode == 0, r.stdout + r.stderr
    run_id = json.loads(lg("audit", "list", "--json").stdout)[-1]["id"]
    shown = lg("audit", "show", run_id, "--json").stdout
    assert '"sampling:everything"' in shown  # the request's card and decision are journaled
    assert "Write a haiku about sandboxes" in shown
    if approve_yellow:
        assert "seccomp hums softly" in r.stdout + shown  # the model's answer reached the server
    else:
        assert "denied by unattended" in r.stdout
        assert "seccomp hums softly" not in shown


def test_an_elicitation_in_an_inbox_run_is_a_question_answered_from_the_cli(
    mcp_workspace: Path, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('auto_approve = ["green", "yellow"]\n')
    pb = write_playbook(
        tmp_path / "p.json",
        [
            {
                "tool_calls": [
                    {"name": "mcp:everything/trigger-elicitation-request", "arguments": {}}
                ]
            },
            {"content": "done"},
        ],
    )
    run = subprocess.Popen(
        [*LUMINAGUARD, "run", "t", "--workspace", str(mcp_workspace), "--playbook", str(pb),
         "--policy", str(policy), "--approver", "inbox"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        questions: list[dict[str, Any]] = []
        while not questions and time.monotonic() < deadline:
            time.sleep(0.2)
            questions = json.loads(lg("approvals", "questions", "--json").stdout)
        assert questions, "the question never reached the inbox"
        q = questions[0]
        assert q["server"] == "everything" and "name" in q["schema"]["properties"]
        listed = lg("approvals", "list").stdout
        assert "1 question(s) from MCP servers waiting" in listed
        # Bad answers are one sentence each, and leave the question open.
        assert_clean_error(lg("approvals", "answer", str(q["id"])), "field 'name' is required")
        assert_clean_error(
            lg("approvals", "answer", str(q["id"]), "name=Ada", "integer=500"),
            "field 'integer' must be between 1 and 100",
        )
        assert_clean_error(
            lg("approvals", "answer", str(q["id"]), "name=Ada", "untitledSingleSelectEnum=Gunther"),
            "must be one of Monica",
        )
        r = lg("approvals", "answer", str(q["id"]), "name=Ada Lovelace", "check=yes", "integer=7")
        assert r.returncode == 0 and "accepted by" in r.stdout
        out, _ = run.communicate(timeout=60)
    finally:
        run.kill()
    assert run.returncode == 0, out
    run_id = json.loads(lg("audit", "list", "--json").stdout)[-1]["id"]
    shown = lg("audit", "show", run_id, "--json").stdout
    assert "User provided the requested information" in shown and "Ada Lovelace" in shown
    assert '\\"integer\\": 7' in shown or '"integer": 7' in shown
    assert json.loads(lg("approvals", "questions", "--json").stdout) == []


def test_a_server_config_mistake_is_one_sentence_in_our_words(workspace: Path) -> None:
    (workspace / "luminaguard.toml").write_text(
        '[mcp.servers.bad]\ncommand = "uvx"\n[mcp.servers.net]\ncommand = "/usr/bin/true"\nnetwork = "everywhere"\n'
    )
    trust_config(workspace)
    assert_clean_error(
        lg("mcp", "tools", "bad", cwd=workspace),
        "MCP server bad cannot start: mcp.servers.bad: uvx without a package",
    )
    assert_clean_error(
        lg("mcp", "tools", "net", cwd=workspace), "mcp.servers.net.network: unknown network mode"
    )


def test_an_mcp_servers_progress_is_shown_while_its_tool_runs(
    mcp_workspace: Path, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('auto_approve = ["green", "yellow", "orange"]\n')
    pb = write_playbook(
        tmp_path / "p.json",
        [
            {
                "tool_calls": [
                    {
                        "name": "mcp:everything/trigger-long-running-operation",
                        "arguments": {"duration": 2, "steps": 4},
                    }
                ]
            },
            {"content": "done"},
        ],
    )
    r = lg(
        "run", "t", "--workspace", str(mcp_workspace), "--playbook", str(pb), "--policy", str(policy)
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [line for line in r.stdout.splitlines() if "⏳ mcp:everything/trigger-long" in line]
    assert lines, r.stdout
    assert lines[-1].strip().startswith("⏳ mcp:everything/trigger-long-running-operation 4/4")
