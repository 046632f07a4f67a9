"""Model specs ``PROVIDER/MODEL`` to providers, imported only when used."""

from __future__ import annotations

from pathlib import Path

from luminaguard.errors import UsageError
from luminaguard.protocols import Provider

PROVIDERS = ("scripted",)


def open_provider(spec: str) -> Provider:
    """A provider for ``spec``, e.g. ``scripted/playbook.json``."""
    name, sep, model = spec.partition("/")
    if not sep or not model:
        raise UsageError(f"model spec {spec!r} is not PROVIDER/MODEL (e.g. scripted/playbook.json)")
    if name == "scripted":
        from luminaguard.llm.scripted import ScriptedProvider

        return ScriptedProvider.from_path(Path(model))
    raise UsageError(
        f"unknown provider {name!r} in {spec!r}; available here: {', '.join(PROVIDERS)}"
    )
