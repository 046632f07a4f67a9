from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from luminaguard.config import SandboxSettings


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
