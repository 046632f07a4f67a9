"""Sandbox backends, by short name, imported only when opened.

``open_sandbox("bwrap", workspace, settings)`` gives a ``Sandbox``; an unknown
name fails with the list of known ones. A backend is a class implementing
``luminaguard.protocols.Sandbox`` (and passing tests/sandbox/contract.py),
registered with ``register(name, "module:Class")``, the built-in one the same
way as any other.

The in-memory reference backend (``sandbox/memory.py``) isolates nothing, so
it is not registered here: tests register it themselves.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from luminaguard.config import SandboxSettings
from luminaguard.errors import UsageError
from luminaguard.protocols import Sandbox

BACKENDS: dict[str, str] = {}


def register(name: str, target: str) -> None:
    """Make ``target`` (``"package.module:Class"``) the backend called ``name``."""
    BACKENDS[name] = target


register("bwrap", "luminaguard.sandbox.bwrap:BwrapSandbox")
register("gvisor", "luminaguard.sandbox.gvisor:GvisorSandbox")
register("microvm", "luminaguard.vm.backend:MicrovmSandbox")

POOLED = ("bwrap", "gvisor", "microvm")
"""The backends with a warm pool (``pool bench``, the local service's pools;
microvm's is its clone pool, one per process)."""


def backend_class(name: str) -> Any:
    try:
        target = BACKENDS[name]
    except KeyError:
        known = ", ".join(sorted(BACKENDS))
        raise UsageError(f"unknown sandbox backend {name!r}; known backends: {known}") from None
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def open_sandbox(name: str, workspace: Path, settings: SandboxSettings, **options: Any) -> Sandbox:
    sandbox: Sandbox = backend_class(name)(workspace, settings, **options)
    return sandbox
