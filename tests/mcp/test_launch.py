"""How launcher commands written for other clients are read (`npx`, `uvx`)."""

from __future__ import annotations

import pytest

from luminaguard.mcp.launch import npm_package, uvx_package


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["mcp-server-time"], (["mcp-server-time"], "mcp-server-time", [])),
        (
            ["mcp-server-git", "--repository", "/w"],
            (["mcp-server-git"], "mcp-server-git", ["--repository", "/w"]),
        ),
        (["mcp-server-time@0.6.2"], (["mcp-server-time==0.6.2"], "mcp-server-time", [])),
        (["mcp-server-time@latest"], (["mcp-server-time"], "mcp-server-time", [])),
        (
            ["--from", "git-tools>=1", "git-mcp", "-v"],
            (["git-tools>=1"], "git-mcp", ["-v"]),
        ),
        (
            ["-q", "--with=pytz", "--python", "3.12", "mcp-server-time"],
            (["mcp-server-time", "pytz"], "mcp-server-time", []),
        ),
        (["--from"], None),
        ([], None),
    ],
)
def test_uvx_arguments(args: list[str], expected: object) -> None:
    assert uvx_package(args) == expected


def test_npx_arguments() -> None:
    assert npm_package(["-y", "@scope/pkg@1.2", "--flag"]) == ("@scope/pkg@1.2", ["--flag"])
    assert npm_package(["-y"]) is None
