"""The CLI's quick path recognises exactly the `sandbox exec` it may hand to
the service, and leaves everything else to the full CLI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from luminaguard.quick import _exec_request


def test_a_read_only_sandbox_exec_becomes_a_request(tmp_path: Path) -> None:
    ws = str(tmp_path.resolve())
    request = _exec_request(
        ["sandbox", "exec", "--workspace", ws, "--read-only", "--timeout=5", "--", "ls", "-l"]
    )
    assert request == {
        "op": "exec",
        "workspace": ws,
        "backend": None,
        "argv": ["ls", "-l"],
        "timeout_s": 5.0,
    }
    request = _exec_request(["sandbox", "exec", "--read-only", "--backend", "gvisor", "--", "ls"])
    assert request is not None
    assert request["backend"] == "gvisor" and request["workspace"] == os.path.realpath(".")


@pytest.mark.parametrize(
    "args",
    [
        ["sandbox", "exec", "--", "ls"],  # not read-only: a pool does not serve it
        ["sandbox", "exec", "--read-only", "ls"],  # no `--`
        ["sandbox", "exec", "--read-only", "--"],  # no command
        ["sandbox", "exec", "--read-only", "--network", "host", "--", "ls"],
        ["sandbox", "exec", "--read-only", "--timeout", "soon", "--", "ls"],
        ["sandbox", "exec", "--read-only", "--workspace", "/no/such/dir", "--", "ls"],
        ["sandbox", "exec", "--read-only", "--backend", "a", "--backend", "b", "--", "ls"],
        ["sandbox", "exec", "--read-only", "--timeout"],
        ["sandbox", "preview", "--read-only", "--", "ls"],
        ["--help"],
        [],
    ],
)
def test_anything_else_is_the_full_clis(args: list[str]) -> None:
    assert _exec_request(args) is None
