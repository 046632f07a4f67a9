"""The MCP client against real reference servers, sandboxed."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from luminaguard.config import McpServer, SandboxSettings
from luminaguard.core.risk import Risk
from luminaguard.errors import ConfigError, McpServerError, ToolError
from luminaguard.mcp.client import McpServerHandle
from luminaguard.messages import ToolCall
from luminaguard.tools.mcp_tools import McpTools
from tests.conftest import missing

EVERYTHING = McpServer(
    command="npx",
    args=["-y", "@modelcontextprotocol/server-everything", "stdio"],
    trusted=True,
    timeout_s=10,
)


def handle(
    cfg: McpServer, workspace: Path, data_dir: Path, cache: Path, **kw: Any
) -> McpServerHandle:
    return McpServerHandle(
        "srv",
        cfg,
        workspace=workspace,
        data_dir=data_dir,
        sandbox=SandboxSettings(),
        cache_dir=cache,
        **kw,
    )


def test_tools_are_listed_and_called_inside_the_sandbox(
    workspace: Path, data_dir: Path, mcp_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LG_HOST_SECRET", "s3cret-value")

    async def scenario() -> None:
        source = McpTools(handle(EVERYTHING, workspace, data_dir, mcp_cache))
        try:
            await source.connect()
            names = {s.name for s in source.specs()}
            assert {"mcp:srv/echo", "mcp:srv/get-sum", "mcp:srv/get-env"} <= names
            echo = await source.call(ToolCall("c", "mcp:srv/echo", {"message": "hi"}))
            assert echo.output == "Echo: hi" and not echo.is_error
            env = await source.call(ToolCall("c", "mcp:srv/get-env", {}))
            assert "s3cret-value" not in env.output and "LG_HOST_SECRET" not in env.output
            assert '"PWD": "/workspace"' in env.output
            structured = await source.call(
                ToolCall("c", "mcp:srv/get-structured-content", {"location": "New York"})
            )
            assert "structured" in structured.data
        finally:
            await source.server.close()

    asyncio.run(scenario())


def test_trusted_annotations_set_the_level_and_untrusted_ones_do_not(
    workspace: Path, data_dir: Path, mcp_cache: Path
) -> None:
    async def scenario(trusted: bool) -> tuple[Risk, Risk]:
        cfg = EVERYTHING.model_copy(update={"trusted": trusted})
        source = McpTools(handle(cfg, workspace, data_dir, mcp_cache))
        try:
            await source.connect()
            read = source.assess(ToolCall("c", "mcp:srv/echo", {}))
            toggle = source.assess(ToolCall("c", "mcp:srv/toggle-simulated-logging", {}))
            return read.risk, toggle.risk
        finally:
            await source.server.close()

    assert asyncio.run(scenario(True)) == (Risk.GREEN, Risk.YELLOW)
    assert asyncio.run(scenario(False)) == (Risk.RED, Risk.RED)


def test_the_card_of_an_mcp_call_is_the_exact_request(
    workspace: Path, data_dir: Path, mcp_cache: Path
) -> None:
    async def scenario() -> dict[str, Any] | None:
        source = McpTools(handle(EVERYTHING, workspace, data_dir, mcp_cache))
        try:
            await source.connect()
            prepared = await source.prepare(ToolCall("c", "mcp:srv/get-sum", {"a": 1, "b": 2}))
            assert prepared.kind == "request"
            result = await source.apply(prepared)
            assert "3" in result.output
            return prepared.request
        finally:
            await source.server.close()

    request = asyncio.run(scenario())
    assert request is not None
    assert (request["server"], request["tool"], request["arguments"], request["sandboxed"]) == (
        "srv",
        "get-sum",
        {"a": 1, "b": 2},
        True,
    )
    assert request["annotations"]["readOnlyHint"] is True


def test_progress_keeps_a_long_call_alive_and_a_silent_one_times_out(
    workspace: Path, data_dir: Path, mcp_cache: Path
) -> None:
    cfg = EVERYTHING.model_copy(update={"timeout_s": 1.5})

    async def scenario() -> None:
        h = handle(cfg, workspace, data_dir, mcp_cache)
        try:
            # 3 s in total, with progress every 0.5 s: longer than the timeout, but alive.
            ok = await h.call_tool("trigger-long-running-operation", {"duration": 3, "steps": 6})
            assert "completed" in h.render(ok)[0]
            with pytest.raises(ToolError, match="overall limit"):
                await h.call_tool(
                    "trigger-long-running-operation", {"duration": 3, "steps": 6}, max_s=1.0
                )
            # The server is still usable after a cancelled call.
            assert h.render(await h.call_tool("echo", {"message": "after"}))[0] == "Echo: after"
        finally:
            await h.close()

    asyncio.run(scenario())


def test_a_server_killed_mid_call_gives_an_error_and_is_restarted(
    workspace: Path, data_dir: Path, mcp_cache: Path
) -> None:
    async def scenario() -> None:
        h = handle(EVERYTHING, workspace, data_dir, mcp_cache)
        try:
            await h.start()
            call = asyncio.ensure_future(
                h.call_tool("trigger-long-running-operation", {"duration": 20, "steps": 20})
            )
            await asyncio.sleep(0.5)
            # Kill everything in the server's process tree (the sandbox's pid namespace dies with it).
            for pid in _descendants(os.getpid(), b"server-everything"):
                os.kill(pid, 9)
            with pytest.raises(ToolError, match="exited during the call"):
                await asyncio.wait_for(call, 15)
            again = await h.call_tool("echo", {"message": "back"})
            assert h.render(again)[0] == "Echo: back" and h.starts == 2
        finally:
            await h.close()

    asyncio.run(scenario())


def _descendants(root: int, named: bytes) -> list[int]:
    """Processes under root whose command line holds `named` (one that ends while we look is skipped)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int(entry.joinpath("stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, stack = [], [root]
    while stack:
        for c in children.get(stack.pop(), []):
            stack.append(c)
            try:
                if named in Path(f"/proc/{c}/cmdline").read_bytes():
                    out.append(c)
            except OSError:
                continue
    return out


def test_a_result_over_the_limit_is_cut_with_a_note(
    workspace: Path, data_dir: Path, mcp_cache: Path
) -> None:
    async def scenario() -> str:
        h = handle(EVERYTHING, workspace, data_dir, mcp_cache, result_limit=1000)
        try:
            return h.render(await h.call_tool("echo", {"message": "x" * (2 * 1024 * 1024)}))[0]
        finally:
            await h.close()

    text = asyncio.run(scenario())
    assert len(text) < 1200 and "result cut" in text


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("import time\ntime.sleep(60)\n", "did not answer `initialize`"),
        (
            "import sys, time\nsys.stdout.write('garbage, not JSON-RPC\\n' * 5); sys.stdout.flush(); time.sleep(60)\n",
            "is not an MCP server: it wrote 'garbage, not JSON-RPC",
        ),
        ("import sys\nsys.exit(3)\n", "failed to start"),
    ],
)
def test_broken_servers_fail_within_a_bounded_time(
    workspace: Path, data_dir: Path, script: str, message: str
) -> None:
    path = workspace / "server.py"
    path.write_text(script)
    cfg = McpServer(command="/usr/bin/python3", args=["/workspace/server.py"], timeout_s=5)

    async def scenario() -> None:
        h = handle(cfg, workspace, data_dir, data_dir / "cache", init_timeout_s=3)
        try:
            with pytest.raises(McpServerError, match=message):
                await asyncio.wait_for(h.list_tools(), 20)
        finally:
            await h.close()

    asyncio.run(scenario())
    assert not _descendants(os.getpid(), b"server.py"), "an orphaned server process is left"


def test_memory_server_keeps_its_data_file_in_the_workspace(
    workspace: Path, data_dir: Path, mcp_cache: Path
) -> None:
    cfg = McpServer(
        command="npx",
        args=["-y", "@modelcontextprotocol/server-memory"],
        env={"MEMORY_FILE_PATH": "/workspace/memory.jsonl"},
        workspace="write",
    )

    async def scenario() -> str:
        h = handle(cfg, workspace, data_dir, mcp_cache)
        try:
            await h.call_tool(
                "create_entities",
                {
                    "entities": [
                        {"name": "lg", "entityType": "project", "observations": ["sandboxed"]}
                    ]
                },
            )
            return h.render(await h.call_tool("read_graph", {}))[0]
        finally:
            await h.close()

    graph = asyncio.run(scenario())
    assert "sandboxed" in graph
    assert json.loads((workspace / "memory.jsonl").read_text().splitlines()[0])["name"] == "lg"


def test_filesystem_server_reaches_only_the_workspace(
    workspace: Path, data_dir: Path, mcp_cache: Path, tmp_path: Path, process_backend: str
) -> None:
    """On every backend that runs servers, chosen per server."""
    (workspace / "a.txt").write_text("inside")
    secret = tmp_path / "outside.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    cfg = McpServer(
        command="npx",
        args=["-y", "@modelcontextprotocol/server-filesystem", "/workspace"],
        workspace="write",
        backend=process_backend,
    )

    async def scenario() -> tuple[str, bool, str]:
        h = handle(cfg, workspace, data_dir, mcp_cache)
        try:
            inside = h.render(await h.call_tool("read_text_file", {"path": "/workspace/a.txt"}))[0]
            text, is_error, _ = h.render(await h.call_tool("read_text_file", {"path": str(secret)}))
            await h.call_tool("write_file", {"path": "/workspace/new.txt", "content": "written"})
            return inside, is_error, text
        finally:
            await h.close()

    inside, is_error, text = asyncio.run(scenario())
    assert inside == "inside"
    assert is_error and "TOP-SECRET-CONTENT" not in text
    assert (workspace / "new.txt").read_text() == "written"
    assert sys.platform == "linux"


@pytest.fixture
def py_servers(mcp_cache: Path) -> Path:
    from luminaguard.errors import ConfigError
    from luminaguard.mcp.launch import resolve_uvx

    try:
        for package in ("mcp-server-time", "mcp-server-git"):
            resolve_uvx([package], package, mcp_cache)
    except ConfigError as exc:
        missing(f"mcp-server-time and mcp-server-git could not be installed from PyPI: {exc}")
    return mcp_cache


def test_pypi_servers_time_and_git_start_from_uvx_and_run_sandboxed(
    workspace: Path, data_dir: Path, py_servers: Path
) -> None:
    """Configured the way users write it for other clients: `uvx PACKAGE`."""
    import subprocess

    subprocess.run(["git", "init", "-q", str(workspace)], check=True)
    (workspace / "a.txt").write_text("x")

    async def scenario() -> tuple[str, str]:
        time_server = handle(
            McpServer(command="uvx", args=["mcp-server-time"]), workspace, data_dir, py_servers
        )
        git_server = handle(
            McpServer(command="uvx", args=["mcp-server-git", "--repository", "/workspace"]),
            workspace,
            data_dir,
            py_servers,
        )
        try:
            assert time_server.sandboxed and git_server.sandboxed
            now = time_server.render(
                await time_server.call_tool("get_current_time", {"timezone": "Europe/Paris"})
            )[0]
            status = git_server.render(
                await git_server.call_tool("git_status", {"repo_path": "/workspace"})
            )[0]
            return now, status
        finally:
            await time_server.close()
            await git_server.close()

    now, status = asyncio.run(scenario())
    assert json.loads(now)["timezone"] == "Europe/Paris"
    assert "a.txt" in status


CHANGING = McpServer(
    command=sys.executable,
    args=[str(Path(__file__).with_name("changing_server.py"))],
    trusted=True,
    timeout_s=20,
)


def test_a_changed_tool_list_is_listed_again_before_the_next_step(
    workspace: Path, data_dir: Path
) -> None:
    from luminaguard.tools.toolbox import ToolBox

    async def scenario() -> None:
        source = McpTools(handle(CHANGING, workspace, data_dir, data_dir / "cache"))
        try:
            await source.connect()
            box = ToolBox([source])
            assert {s.name for s in box.specs()} == {"mcp:srv/unlock", "mcp:srv/lock"}
            assert await box.changes() is None  # nothing said, nothing asked
            await source.call(ToolCall("1", "mcp:srv/unlock", {}))
            for _ in range(50):  # the notification may trail the result
                if source.server.tools_changed:
                    break
                await asyncio.sleep(0.02)
            assert await box.changes() == (["mcp:srv/secret"], [])
            result = await box.call(ToolCall("2", "mcp:srv/secret", {}))
            assert result.output == "the secret is 42"
            assert box.assess(ToolCall("3", "mcp:srv/secret", {})).risk == Risk.GREEN
            await source.call(ToolCall("4", "mcp:srv/lock", {}))
            for _ in range(50):
                if source.server.tools_changed:
                    break
                await asyncio.sleep(0.02)
            assert await box.changes() == ([], ["mcp:srv/secret"])
            assert box.assess(ToolCall("5", "mcp:srv/secret", {})).risk == Risk.RED
        finally:
            await source.server.close()

    asyncio.run(scenario())


def test_a_silent_call_times_out_but_not_while_a_person_answers_the_server(
    workspace: Path, data_dir: Path, mcp_cache: Path
) -> None:
    cfg = EVERYTHING.model_copy(update={"timeout_s": 1.0})

    async def slow_person(message: str, schema: Any) -> tuple[str, dict[str, Any]]:
        await asyncio.sleep(2.5)  # longer than the call's timeout
        return "accept", {"name": "Ada"}

    async def scenario() -> None:
        h = handle(cfg, workspace, data_dir, mcp_cache)
        h.elicit = slow_person
        try:
            started = time.monotonic()
            with pytest.raises(ToolError, match="made no progress for 1 s"):
                await h.call_tool("trigger-long-running-operation", {"duration": 4, "steps": 1})
            assert time.monotonic() - started < 2.5
            answered = await h.call_tool("trigger-elicitation-request", {})
            assert "Ada" in h.render(answered)[0]
        finally:
            await h.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("network", ["allow:127.0.0.1:{port}", "none"])
def test_a_sandboxed_servers_network_is_its_allow_list(
    workspace: Path, data_dir: Path, network: str, host_web: int
) -> None:
    port = host_web
    cfg = McpServer(
        command=sys.executable,
        args=[str(Path(__file__).with_name("fetch_server.py"))],
        network=network.format(port=port),
        timeout_s=20,
    )

    async def scenario() -> tuple[str, str]:
        h = handle(cfg, workspace, data_dir, data_dir / "cache")
        try:
            allowed = await h.call_tool("fetch", {"url": f"http://127.0.0.1:{port}/"})
            other = await h.call_tool("fetch", {"url": f"http://localhost:{port}/"})
            return h.render(allowed)[0], h.render(other)[0]
        finally:
            await h.close()

    allowed, other = asyncio.run(scenario())
    log = (data_dir / "mcp-logs" / "srv.log").read_text()
    if network == "none":
        assert allowed.startswith("failed") and other.startswith("failed")
        assert "--- network" not in log
    else:
        assert allowed == "200 hello from the host\n"
        assert other == "refused: 403"
        assert f"--- network allowed: GET 127.0.0.1:{port}" in log
        assert f"--- network REFUSED: GET localhost:{port}" in log


def test_a_servers_unknown_network_mode_is_one_config_error(
    workspace: Path, data_dir: Path
) -> None:
    from luminaguard.errors import ConfigError
    from luminaguard.mcp.launch import server_command

    cfg = McpServer(command="/usr/bin/true", network="everywhere")
    with pytest.raises(ConfigError, match=r"mcp\.servers\.srv\.network: unknown network mode"):
        server_command("srv", cfg, workspace=workspace, cache=data_dir)


def test_a_url_elicitation_shows_the_address_and_sends_back_no_content(
    workspace: Path, data_dir: Path, mcp_cache: Path
) -> None:
    asked: list[tuple[str, Any]] = []

    async def person(message: str, schema: Any) -> tuple[str, dict[str, Any]]:
        asked.append((message, schema))
        return "accept", {"ignored": True}

    async def scenario() -> str:
        h = handle(EVERYTHING, workspace, data_dir, mcp_cache)
        h.elicit = person
        try:
            result = await h.call_tool(
                "trigger-url-elicitation", {"url": "https://example.org/consent"}
            )
            return h.render(result)[0]
        finally:
            await h.close()

    text = asyncio.run(scenario())
    assert asked and "Open this address yourself: https://example.org/consent" in asked[0][0]
    assert asked[0][1] is None
    assert "accept" in text and "ignored" not in text


def test_a_servers_resources_are_offered_to_the_agent_as_reads(
    workspace: Path, data_dir: Path, mcp_cache: Path
) -> None:
    from luminaguard.errors import ToolArgumentError

    untrusted = EVERYTHING.model_copy(update={"trusted": False})

    async def scenario() -> None:
        source = McpTools(handle(untrusted, workspace, data_dir, mcp_cache))
        try:
            await source.connect()
            names = {s.name for s in source.specs()}
            assert {"mcp:srv/resources/list", "mcp:srv/resources/read"} <= names
            listing = await source.call(ToolCall("1", "mcp:srv/resources/list", {}))
            first_uri = listing.output.splitlines()[0].split()[0]
            assert "://" in first_uri
            read = await source.call(ToolCall("2", "mcp:srv/resources/read", {"uri": first_uri}))
            assert read.output.strip() and not read.is_error
            # Sandboxed, no network: reading is GREEN even though the server is untrusted.
            assess = source.assess(ToolCall("3", "mcp:srv/resources/read", {"uri": first_uri}))
            assert assess.risk == Risk.GREEN
            with pytest.raises(ToolArgumentError, match="needs a `uri`"):
                await source.call(ToolCall("4", "mcp:srv/resources/read", {}))
        finally:
            await source.server.close()

    asyncio.run(scenario())
    # Without a sandbox, an untrusted server's reads take the policy's open-world level.
    host = McpTools(
        handle(untrusted.model_copy(update={"sandbox": False}), workspace, data_dir, mcp_cache)
    )

    async def on_host() -> Risk:
        try:
            await host.connect()
            return host.assess(ToolCall("5", "mcp:srv/resources/list", {})).risk
        finally:
            await host.server.close()

    assert asyncio.run(on_host()) == Risk.RED


def test_a_sandboxed_server_sees_only_the_sandbox_environment(
    workspace: Path, data_dir: Path, mcp_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from luminaguard.sandbox.profile import SANDBOX_ENV

    monkeypatch.setenv("LG_HOST_SECRET", "do-not-leak")
    monkeypatch.setenv("SHELL", "/usr/bin/host-shell")
    cfg = EVERYTHING.model_copy(update={"env": {"SERVER_SETTING": "x"}})

    async def scenario() -> dict[str, str]:
        h = handle(cfg, workspace, data_dir, mcp_cache)
        try:
            return dict(json.loads(h.render(await h.call_tool("get-env", {}))[0]))
        finally:
            await h.close()

    env = asyncio.run(scenario())
    assert "LG_HOST_SECRET" not in env and "do-not-leak" not in json.dumps(env)
    assert env["SHELL"] == "/bin/sh" and env["HOME"] == SANDBOX_ENV["HOME"]
    assert env["SERVER_SETTING"] == "x"
    assert env.get("PWD", "/workspace") == "/workspace"  # bwrap's --chdir
    assert set(env) <= {*SANDBOX_ENV, "SERVER_SETTING", "PWD"}, set(env) - set(SANDBOX_ENV)


def test_a_stdio_server_starts_through_the_sandbox_backend_it_is_given(
    workspace: Path, data_dir: Path, mcp_cache: Path
) -> None:
    from luminaguard.sandbox.memory import MemorySandbox

    backend = MemorySandbox(workspace, SandboxSettings())

    async def scenario() -> set[str]:
        h = handle(EVERYTHING, workspace, data_dir, mcp_cache, backend=backend)
        try:
            return {t.name for t in await h.list_tools()}
        finally:
            await h.close()

    assert "echo" in asyncio.run(scenario())
    [spec] = backend.launched
    assert Path(spec.argv[0]).name == "node" and spec.argv[1].endswith(".js")
    assert spec.network == "none" and str(mcp_cache) in spec.ro_paths


def test_a_stdio_server_starts_through_the_configured_backend_by_name(
    workspace: Path, data_dir: Path, mcp_cache: Path
) -> None:
    from luminaguard import sandbox
    from luminaguard.sandbox.memory import MemorySandbox

    opened: list[MemorySandbox] = []

    class Recording(MemorySandbox):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            opened.append(self)

    sandbox.register("recording-memory", f"{__name__}:_RECORDING")
    globals()["_RECORDING"] = Recording
    try:
        h = McpServerHandle(
            "srv",
            EVERYTHING,
            workspace=workspace,
            data_dir=data_dir,
            sandbox=SandboxSettings(backend="recording-memory"),
            cache_dir=mcp_cache,
        )

        async def scenario() -> int:
            try:
                return len(await h.list_tools())
            finally:
                await h.close()

        assert asyncio.run(scenario()) > 0
    finally:
        del sandbox.BACKENDS["recording-memory"]
    [backend] = opened
    assert len(backend.launched) == 1


def test_a_servers_own_backend_wins_over_the_runs(
    workspace: Path, data_dir: Path, mcp_cache: Path
) -> None:
    """`backend = "gvisor"` on one server: it starts under gVisor, not in the run's sandbox."""
    from luminaguard.sandbox.memory import MemorySandbox
    from tests.conftest import require_backend

    require_backend("gvisor")
    runs = MemorySandbox(workspace, SandboxSettings())
    cfg = EVERYTHING.model_copy(update={"backend": "gvisor"})

    async def scenario() -> str:
        h = handle(cfg, workspace, data_dir, mcp_cache, backend=runs)
        try:
            return h.render(await h.call_tool("echo", {"message": "from gvisor"}))[0]
        finally:
            await h.close()

    assert "from gvisor" in asyncio.run(scenario())
    assert runs.launched == []


def test_a_server_runs_in_a_micro_vm_of_its_own(
    workspace: Path, data_dir: Path, mcp_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guest has python3 but not the host's packages: a stdlib server in
    the workspace, reached by the real client through the relay."""
    from tests.conftest import require_backend

    require_backend("microvm", monkeypatch)
    (workspace / "srv.py").write_bytes(Path(__file__).with_name("stdlib_server.py").read_bytes())
    (workspace / "a.txt").write_text("from the workspace")
    cfg = McpServer(command="/usr/bin/python3", args=["/workspace/srv.py"], backend="microvm")

    async def scenario() -> str:
        source = McpTools(handle(cfg, workspace, data_dir, mcp_cache))
        try:
            await source.connect()
            assert "mcp:srv/where" in {s.name for s in source.specs()}
            result = await source.call(ToolCall("c", "mcp:srv/where", {"path": "a.txt"}))
            assert not result.is_error, result.output
            return result.output
        finally:
            await source.server.close()

    text = asyncio.run(scenario())
    # Its own kernel (the guest's, not the host's), the sandbox user, the workspace read-only.
    assert os.uname().release not in text, text
    assert "uid=1000 cannot write the workspace from the workspace" in text, text
    assert not (workspace / "written-by-server").exists()


def test_a_micro_vm_says_which_servers_it_cannot_run(
    workspace: Path, data_dir: Path, mcp_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import require_backend

    require_backend("microvm", monkeypatch)
    cfg = McpServer(
        command="npx", args=["-y", "@modelcontextprotocol/server-memory"], backend="microvm"
    )

    async def scenario() -> None:
        h = handle(cfg, workspace, data_dir, mcp_cache)
        try:
            await h.list_tools()
        finally:
            await h.close()

    with pytest.raises((McpServerError, ConfigError), match="cannot be brought in a micro-VM yet"):
        asyncio.run(scenario())
