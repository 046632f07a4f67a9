"""Where LuminaGuard's files are, found without the settings models: the
user's config file and data directory. Light on purpose (the standard
library and ``errors`` only): the quick paths of the CLI (``quick.py``)
find the local service's socket with it before anything heavy is imported."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from luminaguard.errors import ConfigError

ENV_PREFIX = "LUMINAGUARD_"
CONFIG_NAME = "luminaguard.toml"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "luminaguard"


def user_config_dir(env: Mapping[str, str]) -> Path:
    """``$XDG_CONFIG_HOME/luminaguard`` (``~/.config/luminaguard``): the user's own config."""
    return Path(env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")) / "luminaguard"


def user_config_path(env: Mapping[str, str]) -> Path | None:
    """The user's own config: ``$LUMINAGUARD_CONFIG`` (which must exist), else
    ``$XDG_CONFIG_HOME/luminaguard/luminaguard.toml`` if there is one."""
    explicit = env.get(ENV_PREFIX + "CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"{ENV_PREFIX}CONFIG names {path}, which does not exist")
        return path
    path = user_config_dir(env) / CONFIG_NAME
    return path if path.is_file() else None


def read_file(path: Path) -> dict[str, Any]:
    import tomllib  # ~15 ms: not on a quick path that has no config file to read

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} cannot be read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    policy = data.get("policy")
    if isinstance(policy, str) and not Path(policy).is_absolute():
        data["policy"] = str(path.parent / policy)  # relative to the file that names it
    return data


def user_data_dir(env: Mapping[str, str] | None = None) -> Path:
    """The data directory as the user's own config (and environment) set it:
    where trust is recorded, whatever a workspace says."""
    env = os.environ if env is None else env
    path = user_config_path(env)
    return data_dir_of(read_file(path) if path is not None else {}, env)


def data_dir_of(user: dict[str, Any], env: Mapping[str, str]) -> Path:
    raw = env.get(ENV_PREFIX + "DATA_DIR") or user.get("data_dir")
    path = Path(str(raw)).expanduser() if raw else default_data_dir()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"data_dir {path} is a file, not a directory")
    return path
