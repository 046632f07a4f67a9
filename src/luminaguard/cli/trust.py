"""`luminaguard trust [DIR]`: let a workspace's own luminaguard.toml take full effect."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from luminaguard.cli.common import EXIT_OK, say
from luminaguard.errors import UsageError


def add_trust(sub: Any) -> None:
    """trust: a workspace's own config, read and accepted by the person."""
    trust = sub.add_parser(
        "trust", help="trust a workspace's own luminaguard.toml (recorded with its hash)"
    )
    trust.add_argument("dir", nargs="?", type=Path, default=None, help="the workspace (default: .)")
    trust.add_argument("--forget", action="store_true", help="stop trusting it")
    trust.set_defaults(handler=cmd_trust)


def cmd_trust(args: argparse.Namespace) -> int:
    from luminaguard import trust
    from luminaguard.paths import CONFIG_NAME, user_data_dir

    directory = (args.dir or Path.cwd()).resolve()
    config = directory / CONFIG_NAME
    data_dir = user_data_dir()
    if args.forget:
        had = trust.forget(config, data_dir)
        say(f"{config}: {'no longer trusted' if had else 'was not trusted'}")
        return EXIT_OK
    if not config.is_file():
        raise UsageError(f"{directory} has no {CONFIG_NAME} to trust")
    from luminaguard.paths import read_file

    keys = sorted(k for k in trust.leaves(read_file(config)) if k not in trust.NARROWING)
    value = trust.trust(config, data_dir)
    say(f"trusted {config} (sha256 {value[:16]}); if it changes it must be trusted again")
    if keys:
        say("it sets, beyond narrowing limits: " + ", ".join(keys))
    return EXIT_OK
