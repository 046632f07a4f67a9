from __future__ import annotations

from pathlib import Path

import pytest

from luminaguard.errors import ConfigError
from luminaguard.mcp.launch import resolve_npx
from tests.conftest import missing

# Installed once into the project's cache (`make install` warms it too).
CACHE = Path(__file__).resolve().parents[2] / ".cache" / "mcp"
PACKAGES = {
    "everything": "@modelcontextprotocol/server-everything",
    "memory": "@modelcontextprotocol/server-memory",
    "filesystem": "@modelcontextprotocol/server-filesystem",
}


@pytest.fixture(scope="session")
def mcp_cache() -> Path:
    try:
        for package in PACKAGES.values():
            resolve_npx(package, CACHE)
    except ConfigError as exc:
        missing(f"the reference MCP servers could not be installed from npm: {exc}")
    return CACHE
