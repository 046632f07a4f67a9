"""Which workspaces' own `luminaguard.toml` the person has trusted.

A workspace is untrusted (a cloned repository is someone else's code), so
its config file may only narrow what the user's own config allows: lower
limits and budgets, no network. Anything else it sets (servers to start,
models and endpoints, the policy, the sandbox backend, the data directory)
takes effect only once the person has read the file and run
`luminaguard trust DIR`, which records the file's SHA-256 in the user's data
directory; a changed file is untrusted again until trusted again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from luminaguard.errors import ConfigError

TRUST_FILE = "trusted-workspaces.json"

# Keys a workspace may set without trust, and how a value must compare with
# the user's to only narrow it.
NARROWING: dict[str, str] = {
    "agent.max_steps": "at most",
    "agent.max_tokens": "at most",
    "agent.max_cost_usd": "at most",
    "sandbox.timeout_s": "at most",
    "sandbox.memory_mb": "at most",
    "sandbox.cpu_s": "at most",
    "sandbox.pids_max": "at most",
    "sandbox.pool_size": "at most",
    "sandbox.max_file_mb": "at most",
    "sandbox.max_open_files": "at most",
    "sandbox.output_limit_kb": "at most",
    "sandbox.network": "none",
}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _records(data_dir: Path) -> dict[str, str]:
    try:
        loaded = json.loads((data_dir / TRUST_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{data_dir / TRUST_FILE} cannot be read: {exc}") from exc
    return {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}


def is_trusted(config: Path, data_dir: Path, *, identity: Path | None = None) -> bool:
    """Whether ``config`` is, byte for byte, a file the person trusted (for
    ``identity``'s path: a swarm worktree is trusted as its repository)."""
    key = str((identity / config.name) if identity else config.resolve())
    return _records(data_dir).get(key) == digest(config)


def trust(config: Path, data_dir: Path) -> str:
    """Record ``config`` as trusted, as it is now; its digest."""
    records = _records(data_dir)
    value = digest(config)
    records[str(config.resolve())] = value
    _write(data_dir, records)
    return value


def forget(config: Path, data_dir: Path) -> bool:
    records = _records(data_dir)
    had = records.pop(str(config.resolve()), None) is not None
    _write(data_dir, records)
    return had


def _write(data_dir: Path, records: dict[str, str]) -> None:
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = data_dir / f".{TRUST_FILE}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(records, f, indent=1, sort_keys=True)
    os.replace(tmp, data_dir / TRUST_FILE)


def leaves(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every key of a TOML table as a dotted path, with its value."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(leaves(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def widening(
    workspace: dict[str, Any], user: dict[str, Any], defaults: dict[str, Any]
) -> str | None:
    """The first key of an untrusted workspace config that does more than
    narrow the user's settings (``user`` as read, ``defaults`` beneath it), or None."""
    base = {**leaves(defaults), **leaves(user)}
    for key, value in leaves(workspace).items():
        rule = NARROWING.get(key)
        if rule == "none":
            if value != "none":
                return key
        elif rule == "at most":
            current = base.get(key)
            if current is not None and (
                not isinstance(value, int | float) or isinstance(value, bool) or value > current
            ):
                return key
        else:
            return key
    return None
