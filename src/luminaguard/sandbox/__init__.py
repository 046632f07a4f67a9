"""Sandbox backends, by short name, imported only when opened.

``open_sandbox("bwrap", workspace, settings)`` gives a ``Sandbox``; an unknown
name fails with the list of known ones.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from luminaguard.config import SandboxSettings
from luminaguard.errors import UsageError
from luminaguard.protocols import Sandbox

BACKENDS: dict[str, str] = {
    "bwrap": "luminaguard.sandbox.bwrap:BwrapSandbox",
}


def open_sandbox(name: str, workspace: Path, settings: SandboxSettings, **options: Any) -> Sandbox:
    try:
        target = BACKENDS[name]
    except KeyError:
        known = ", ".join(sorted(BACKENDS))
        raise UsageError(f"unknown sandbox backend {name!r}; known backends: {known}") from None
    module_name, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    sandbox: Sandbox = cls(workspace, settings, **options)
    return sandbox
