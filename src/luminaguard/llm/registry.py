"""Model specs ``PROVIDER/MODEL`` to providers, imported only when used.

- ``openai/MODEL``: ``OPENAI_BASE_URL`` (default the OpenAI API) and
  ``OPENAI_API_KEY``; any OpenAI-compatible server (vLLM, llama.cpp server,
  LM Studio) works through the base URL.
- ``ollama/MODEL``: the OpenAI-compatible API at ``OLLAMA_HOST``
  (default ``http://localhost:11434``).
- ``anthropic/MODEL``: ``ANTHROPIC_BASE_URL`` and ``ANTHROPIC_API_KEY``.
- ``scripted/PLAYBOOK``: the offline playbook provider.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from luminaguard.config import LlmSettings
from luminaguard.errors import ConfigError, UsageError
from luminaguard.protocols import Provider

PROVIDERS = ("openai", "ollama", "anthropic", "scripted")


def split_spec(spec: str) -> tuple[str, str]:
    name, sep, model = spec.partition("/")
    if not sep or not model or not name:
        raise UsageError(
            f"model spec {spec!r} is not PROVIDER/MODEL (e.g. openai/gpt-4o or scripted/playbook.json)"
        )
    if name not in PROVIDERS:
        raise UsageError(
            f"unknown provider {name!r} in {spec!r}; known providers: {', '.join(PROVIDERS)}"
        )
    return name, model


def open_deployment(
    spec: str, settings: LlmSettings | None = None, env: Mapping[str, str] | None = None
) -> Provider:
    """One provider for ``spec``, without routing."""
    env = os.environ if env is None else env
    settings = settings or LlmSettings()
    name, model = split_spec(spec)
    if name == "scripted":
        from luminaguard.llm.scripted import ScriptedProvider

        return ScriptedProvider.from_path(Path(model))
    if name in ("openai", "ollama"):
        from luminaguard.llm.openai_provider import OpenAIProvider

        if name == "ollama":
            host = env.get("OLLAMA_HOST", "http://localhost:11434").rstrip("/")
            if "://" not in host:
                host = "http://" + host
            return OpenAIProvider(
                model,
                base_url=host + "/v1",
                api_key="ollama",
                timeout_s=settings.timeout_s,
                provider_name="ollama",
            )
        base = _url(env, "OPENAI_BASE_URL") or "https://api.openai.com/v1"
        key = env.get("OPENAI_API_KEY")
        if not key:
            if "OPENAI_BASE_URL" not in env:
                raise ConfigError(
                    "OPENAI_API_KEY is not set (for a local OpenAI-compatible server, set OPENAI_BASE_URL)"
                )
            key = "not-needed"
        return OpenAIProvider(model, base_url=base, api_key=key, timeout_s=settings.timeout_s)
    from luminaguard.llm.anthropic_provider import AnthropicProvider

    key = env.get("ANTHROPIC_API_KEY")
    if not key:
        if "ANTHROPIC_BASE_URL" not in env:
            raise ConfigError("ANTHROPIC_API_KEY is not set")
        key = "not-needed"
    return AnthropicProvider(
        model,
        base_url=_url(env, "ANTHROPIC_BASE_URL"),
        api_key=key,
        timeout_s=settings.timeout_s,
        max_tokens=settings.max_tokens,
    )


def _url(env: Mapping[str, str], name: str) -> str | None:
    """``$name`` if it is set: it must be an http(s) URL with a host."""
    from urllib.parse import urlsplit

    value = env.get(name)
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name} is {value!r}, not an http:// or https:// URL")
    return value


def open_provider(spec: str, settings: LlmSettings | None = None) -> Provider:
    """A provider for ``spec`` (kept for callers that want one deployment)."""
    return open_deployment(spec, settings)
