"""GREEN is read-only and offline by construction: a command the classifier
let through runs with the workspace read-only and no network, whatever the
sandbox's network mode, so a classification mistake is worth no more than a read."""

from __future__ import annotations

import asyncio
from pathlib import Path

from luminaguard.config import SandboxSettings
from luminaguard.messages import ToolCall
from luminaguard.sandbox.bwrap import BwrapSandbox
from luminaguard.tools.builtin import BuiltinTools

FETCH = "curl -s -m 5 -o /dev/null -w '%{{http_code}}' http://127.0.0.1:{port}/"


def test_a_green_command_gets_no_network_even_where_the_sandbox_allows_it(
    workspace: Path, host_web: int
) -> None:
    sandbox = BwrapSandbox(
        workspace, SandboxSettings(timeout_s=30, network=f"test:127.0.0.1:{host_web}", pool_size=0)
    )
    command = FETCH.format(port=host_web)
    # The sandbox's own mode lets the request through (so the test can fail)...
    direct = asyncio.run(sandbox.exec(["/bin/bash", "-c", command]))
    assert direct.stdout == "200"
    # ...but the same command on the GREEN path (run without asking) reaches nothing.
    tools = BuiltinTools(sandbox)
    result = asyncio.run(tools.call(ToolCall("c", "shell", {"command": command})))
    assert "000" in result.output
    assert sandbox.network_records() == []


def test_a_green_command_cannot_write_the_workspace(workspace: Path) -> None:
    tools = BuiltinTools(BwrapSandbox(workspace, SandboxSettings(timeout_s=30)))
    result = asyncio.run(tools.call(ToolCall("c", "shell", {"command": "echo x > made.txt"})))
    assert result.is_error and not (workspace / "made.txt").exists()
