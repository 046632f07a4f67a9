"""`luminaguard init`: a commented config and policy to start from.

Both files are written from the settings and policy models themselves (every
key with its default and its description), so they cannot drift from what
the loader accepts. Every line is a comment: the files change nothing until a
line is uncommented.
"""

from __future__ import annotations

import argparse
import json
import os
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from luminaguard.cli.common import EXIT_OK, say
from luminaguard.errors import UsageError

if TYPE_CHECKING:  # pydantic is imported by the handler, not by `luminaguard --help`
    from pydantic import BaseModel

POLICY_NAME = "policy.toml"

EXAMPLES = "# --- examples ---"

POLICY_EXAMPLES = f"""
{EXAMPLES}
# Standing grants answer matching approvals in advance, until they expire.
# [[grants]]
# tool = "shell"
# pattern = "pytest*"            # matched against each command of a script
# max_risk = "orange"
# hours = 8

# Who may approve what. `users` are the OS users who may act as the principal.
# [roles.reviewer]
# max_risk = "orange"
# tools = ["shell", "write_file"]
# [principals.alice]
# role = "reviewer"
# users = ["alice"]

# Rate limits and quotas (token buckets).
# [[limits]]
# scope = "tool"
# name = "shell"
# capacity = 30
# refill_per_s = 0.5
"""

CONFIG_EXAMPLES = f"""
{EXAMPLES}
# An MCP server (stdio, sandboxed, workspace read-only unless it says "write").
# [mcp.servers.files]
# command = "npx"
# args = ["-y", "@modelcontextprotocol/server-filesystem", "/workspace"]

# A router group: models tried in turn, with fallbacks.
# [router.groups.main]
# models = ["openai/gpt-4o-mini"]
# fallbacks = ["ollama/llama3.1"]
"""


def add_init(sub: Any) -> None:
    """init: commented starting points for the config and the policy."""
    init = sub.add_parser(
        "init", help="write a commented config and policy to start from (changes nothing as is)"
    )
    init.add_argument(
        "--workspace",
        type=Path,
        help="write the workspace's own luminaguard.toml instead of your user config "
        "(it only narrows yours until you `luminaguard trust` it)",
    )
    init.set_defaults(handler=cmd_init)


def cmd_init(args: argparse.Namespace) -> int:
    from luminaguard.config import Settings
    from luminaguard.paths import CONFIG_NAME, user_config_dir
    from luminaguard.policy.policyfile import Policy

    if args.workspace is not None:
        if not args.workspace.is_dir():
            raise UsageError(f"{args.workspace} is not a directory")
        targets = {args.workspace / CONFIG_NAME: scaffold(Settings, skip={"data_dir", "source"})}
    else:
        home = user_config_dir(os.environ)
        policy = home / POLICY_NAME
        config = scaffold(Settings, skip={"policy", "data_dir", "source"}) + CONFIG_EXAMPLES
        config = (
            f'# The policy below is used when --policy is not given.\npolicy = "{POLICY_NAME}"\n\n'
            + config
        )
        targets = {
            home / CONFIG_NAME: config,
            policy: scaffold(Policy, skip={"source"}) + POLICY_EXAMPLES,
        }
    there = [str(p) for p in targets if p.exists()]
    if there:
        raise UsageError(f"{', '.join(there)} already exists; nothing was written")
    for path, text in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        say(f"wrote {path}")
    if args.workspace is not None:
        say(
            f"it narrows your own config only; `luminaguard trust {args.workspace}` lets it all take effect"
        )
    return EXIT_OK


def scaffold(
    model: type[BaseModel],
    *,
    skip: frozenset[str] | set[str] = frozenset(),
    top_only: bool = False,
) -> str:
    """Every key of ``model`` as a comment: its description, then ``# key = default``;
    nested sections as ``# [section]`` blocks."""
    docs = attribute_docs(model)
    top = [
        _key(n, f, docs.get(n, ""))
        for n, f in model.model_fields.items()
        if n not in skip and _section(f) is None
    ]
    sections = [
        f"# [{name}]\n" + scaffold(kind, top_only=True) + "\n"
        for name, field in model.model_fields.items()
        if name not in skip and (kind := _section(field)) is not None
    ]
    if top_only:
        return "\n\n".join(top)
    return "\n\n".join(top) + "\n\n" + "\n".join(sections)


def _section(field: Any) -> type[BaseModel] | None:
    """The model of a field that is itself a model (a ``[section]`` of its own)."""
    from pydantic import BaseModel

    kind = field.annotation
    return kind if isinstance(kind, type) and issubclass(kind, BaseModel) else None


def attribute_docs(model: type) -> dict[str, str]:
    """The docstring under each field of ``model`` (and its bases), read from
    the source. Read here, for ``init`` only: pydantic's
    ``use_attribute_docstrings`` would read every settings class's source at
    import, ~30 ms on every command's start."""
    import ast
    import inspect
    import itertools
    import textwrap

    docs: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not cls.__module__.startswith("luminaguard."):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body if isinstance(tree.body[0], ast.ClassDef) else []
        for stmt, after in itertools.pairwise(body):
            if (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[stmt.target.id] = inspect.cleandoc(after.value.value)
    return docs


def _key(name: str, field: Any, doc: str) -> str:
    about = " ".join((field.description or doc).split())
    lines = [f"# {about}"] if about else []
    default = field.get_default(call_default_factory=True)
    value = _toml(default)
    lines.append(f"# {name} = {value}" if value is not None else f"# {name}: not set by default")
    return "\n".join(lines)


def _toml(value: Any) -> str | None:
    """A default as TOML, or None when it has no TOML spelling worth showing (unset)."""
    if value is None:
        return None
    if isinstance(value, Enum):
        return json.dumps(getattr(value, "label", value.value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))
    if isinstance(value, list | tuple | set | frozenset):
        items = [_toml(v) for v in sorted(value, key=str)]
        return "[" + ", ".join(i for i in items if i is not None) + "]"
    if isinstance(value, dict) and not value:
        return "{}"
    return None
