from __future__ import annotations

import functools
import http.server
import json
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from luminaguard.config import SandboxSettings


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`make test` runs three workers, ``--dist
    loadgroup``), the micro-VM's tests share one worker, as the
    fleet's do: their guests run under TCG, and two workers' guests at once
    starve each other on a two-core machine; the fleet's tests share one
    Temporal dev server and time failovers."""
    for item in items:
        path = item.nodeid.split("::")[0]
        if path.startswith("tests/vm/") or "microvm" in item.nodeid or "micro_vm" in item.nodeid:
            item.add_marker(pytest.mark.xdist_group("microvm"))
        elif path.startswith("tests/fleet/"):
            item.add_marker(pytest.mark.xdist_group("fleet"))


@pytest.fixture(autouse=True)
def isolated_state(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """Every test gets its own data dir and config dir; nothing of the user's leaks in."""
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))
    for name in list(os.environ):
        if name.startswith("LUMINAGUARD_"):
            monkeypatch.delenv(name)
    yield state / "luminaguard"


@pytest.fixture
def data_dir(isolated_state: Path) -> Path:
    return isolated_state


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


@pytest.fixture
def sandbox_settings() -> SandboxSettings:
    return SandboxSettings(timeout_s=30)


def write_playbook(path: Path, steps: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"steps": steps}), encoding="utf-8")
    return path


LUMINAGUARD = [sys.executable, "-m", "luminaguard"]


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello from the host\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def host_web() -> Iterator[int]:
    """A plain HTTP server on the host's loopback; its port."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield int(httpd.server_address[1])
    httpd.shutdown()
    httpd.server_close()


def trust_config(workspace: Path, data_dir: Path | None = None) -> None:
    """Trust ``workspace``'s own luminaguard.toml as it is now (what `luminaguard trust`
    does), in ``data_dir`` (default: this test's)."""
    from luminaguard.paths import user_data_dir
    from luminaguard.trust import trust

    trust(workspace / "luminaguard.toml", data_dir or user_data_dir())


SANDBOX_BACKENDS = ("bwrap", "gvisor", "microvm")
"""Every real backend: the escape and contract suites run against each."""
PROCESS_BACKENDS = ("bwrap", "gvisor")
"""The backends that run any MCP server (host paths bound in); microvm runs only
programs in its guest image or the workspace, read-only, without a network."""
VM_CACHE = Path(__file__).resolve().parents[1] / ".cache" / "vm"
"""The micro-VM's image and templates, built once for every test (as the MCP servers are)."""


@functools.cache
def _built_image() -> Any:
    """The micro-VM's image in ``VM_CACHE``, built (or found: apt is asked for
    the versions, seconds each time) once per test session; or the reason not."""
    from luminaguard.errors import LuminaGuardError
    from luminaguard.vm.image import build_image

    try:
        return build_image(VM_CACHE, say=lambda line: None)[0]
    except LuminaGuardError as exc:
        return f"the micro-VM image could not be built here: {exc}"


def vm_image() -> Any:
    """The micro-VM's image, or the test is ``missing`` it."""
    image = _built_image()
    if isinstance(image, str):
        missing(image)
    return image


def require_backend(name: str, monkeypatch: pytest.MonkeyPatch | None = None) -> None:
    """The backend runs here, or the test is ``missing`` it (a failure in CI).
    The micro-VM's image is built into ``VM_CACHE`` the first time."""
    from luminaguard.errors import SandboxUnavailable
    from luminaguard.sandbox import backend_class

    try:
        backend_class(name).check_available()
    except SandboxUnavailable as exc:
        missing(str(exc))
    if name in ("gvisor", "microvm") and os.geteuid() != 0:
        missing(f"{name} previews need LuminaGuard to run as root (`luminaguard doctor`)")
    if name == "microvm":
        vm_image()
        if monkeypatch is not None:
            monkeypatch.setenv("LUMINAGUARD_VM_DATA", str(VM_CACHE))


@pytest.fixture(params=SANDBOX_BACKENDS)
def sandbox_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    require_backend(request.param, monkeypatch)
    return str(request.param)


@pytest.fixture(params=PROCESS_BACKENDS)
def process_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """A backend that runs MCP servers too."""
    require_backend(request.param, monkeypatch)
    return str(request.param)


def missing(reason: str) -> None:
    """A prerequisite is missing: skip locally, but fail in CI, where the
    project's own setup must have installed it (a test never turns into a skip there)."""
    if os.environ.get("CI"):
        pytest.fail(f"missing in CI: {reason}")
    pytest.skip(reason)
