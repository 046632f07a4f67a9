"""How a stdio MCP server is started: inside the sandbox by default.

This module resolves *what* to start (``server_command``); the configured
sandbox backend starts it (``Sandbox.process``), as it starts every tool call.

A config written the way users write it for other clients must just work:
`command = "npx", args = ["-y", "@modelcontextprotocol/server-memory"]`.
The sandbox has no network, so such a package is resolved and installed
*outside* it first, into a cache LuminaGuard manages
(`<data_dir>/mcp-cache/npm/<package>`), and started from there with `node`,
the cache mounted read-only. Everything else about the sandbox is the same as
for tool calls, whichever backend is configured: namespaces, seccomp, no capabilities, limits, a clean
environment (plus the server's own `env`), and the workspace read-only unless
the config says `workspace = "write"`: a server never changes files behind the
Approval Cliff's back, nor races a commit.

`uvx PACKAGE` (or `uvx --from SPEC COMMAND`, with `--with` extras) is
resolved the same way: a virtual environment per requirement set in
`<cache>/uv/`, built with pip outside the sandbox, its console script started
inside with the environment mounted read-only.

Network: `none` (default), `allow:HOST[,HOST…]` (through the host-side
egress proxy, which lets only those hosts through and logs every request to
the server's log), or `host` (the host's network, said loudly).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from luminaguard.config import McpServer
from luminaguard.errors import ConfigError, LuminaGuardError
from luminaguard.protocols import ProcessLaunch, ProcessSpec
from luminaguard.store import exclusive

INSTALL_TIMEOUT_S = 600


def npm_package(args: list[str]) -> tuple[str, list[str]] | None:
    """For `npx [-y] PACKAGE [ARGS…]`: the package and its arguments."""
    rest = list(args)
    while rest and rest[0].startswith("-"):
        rest.pop(0)
    return (rest[0], rest[1:]) if rest else None


def resolve_npx(package: str, cache: Path) -> list[str]:
    """Install ``package`` into the cache if needed; the `node SCRIPT` that starts it.

    The install goes to a temporary directory that is renamed into place only
    once the package's executable is really there, so an interrupted or
    concurrent install never leaves a half-installed package behind.
    """
    name = (
        re.sub(r"@[^@/]*$", "", package)
        if package.count("@") > (1 if package.startswith("@") else 0)
        else package
    )
    target = cache / "npm" / re.sub(r"[^a-zA-Z0-9._-]+", "_", package)
    script = _npm_script(target, name)
    if script is None:
        npm = shutil.which("npm")
        if npm is None:
            raise ConfigError(
                f"npx {package}: npm is not installed, so the package cannot be resolved"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            installed = _installing(f"npm package {package}", cache)
            out = subprocess.run(
                [npm, "install", "--prefix", str(staging), "--no-audit", "--no-fund", "--silent", package],
                capture_output=True, encoding="utf-8", timeout=INSTALL_TIMEOUT_S, check=False,
            )  # fmt: skip
            if out.returncode != 0:
                raise ConfigError(
                    f"npx {package}: npm install failed: {(out.stderr or out.stdout).strip()[:300]}"
                )
            if _npm_script(staging, name) is None:
                raise ConfigError(f"npx {package}: the installed package has no executable")
            installed()
            # Code, not a secret, and run by the sandbox user: under root that
            # is another host user (``sandbox.hostuser``). mkdtemp made it 0700.
            staging.chmod(0o755)
            shutil.rmtree(target, ignore_errors=True)
            # OSError: another process got a complete install there first.
            with contextlib.suppress(OSError):
                staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        script = _npm_script(target, name)
        assert script is not None
    elif target.stat().st_mode & 0o005 != 0o005:
        target.chmod(0o755)  # installed before packages were made readable
    node = shutil.which("node")
    if node is None:
        raise ConfigError(f"npx {package}: node is not installed")
    return [os.path.realpath(node), str(script.resolve())]


def uvx_package(args: list[str]) -> tuple[list[str], str, list[str]] | None:
    """For `uvx [--from SPEC] [--with SPEC]… PACKAGE|COMMAND [ARGS…]`: the
    requirements to install, the command to run, and its arguments."""
    rest = list(args)
    source: str | None = None
    extra: list[str] = []
    while rest and rest[0].startswith("-"):
        option = rest.pop(0)
        name, eq, value = option.partition("=")
        if name in ("--from", "--with", "--python", "-p", "--index-url", "--index"):
            if not eq:
                if not rest:
                    return None
                value = rest.pop(0)
            if name == "--from":
                source = value
            elif name == "--with":
                extra.append(value)
        # Other flags (-q, --quiet, --isolated, --offline…) change nothing here.
    if not rest:
        return None
    command, rest = rest[0], rest[1:]
    if source is None:
        # `uvx PACKAGE@VERSION` runs the command named like the package.
        source = command
        if "@" in command and not command.startswith("@"):
            name, version = command.split("@", 1)
            command, source = name, f"{name}=={version}" if version != "latest" else name
    return [source, *extra], re.split(r"[\[<>=!~ ;@]", command, maxsplit=1)[0], rest


def resolve_uvx(requirements: list[str], command: str, cache: Path) -> Path:
    """Install ``requirements`` into a virtual environment in the cache if
    needed; the path of its ``command``.

    A venv cannot be moved (its scripts name their own path), so it is built
    in place under a lock and marked complete only once the command is there;
    an unmarked one is an interrupted install and is built again.
    """
    key = re.sub(r"[^a-zA-Z0-9._-]+", "_", "+".join(requirements))
    target = cache / "uv" / key
    script = target / "bin" / command
    marker = target / ".luminaguard-complete"
    if marker.exists() and script.exists():
        return script
    target.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(target.parent / f".{key}.lock"):
        if marker.exists() and script.exists():
            return script
        shutil.rmtree(target, ignore_errors=True)
        installed = _installing(f"PyPI package {' '.join(requirements)}", cache)
        base = getattr(sys, "_base_executable", sys.executable)
        steps = [
            [base, "-m", "venv", str(target)],
            [str(target / "bin" / "python"), "-m", "pip", "install", "--quiet",
             "--disable-pip-version-check", *requirements],
        ]  # fmt: skip
        for step in steps:
            out = subprocess.run(
                step, capture_output=True, encoding="utf-8", timeout=INSTALL_TIMEOUT_S, check=False
            )
            if out.returncode != 0:
                shutil.rmtree(target, ignore_errors=True)
                raise ConfigError(
                    f"uvx {' '.join(requirements)}: the install failed: {(out.stderr or out.stdout).strip()[-300:]}"
                )
        if not script.exists():
            shutil.rmtree(target, ignore_errors=True)
            raise ConfigError(
                f"uvx {' '.join(requirements)}: the installed package has no command {command!r}"
            )
        marker.touch()
        installed()
    return script


def _installing(what: str, cache: Path) -> Callable[[], None]:
    """Says on stderr that a first use installs something (seconds to minutes);
    the function returned says how long it took."""
    started = time.monotonic()
    print(f"luminaguard: first use of {what}: installing it into {cache}…", file=sys.stderr)

    def done() -> None:
        took = time.monotonic() - started
        print(f"luminaguard: {what} installed in {took:.1f} s", file=sys.stderr)

    return done


def _npm_script(prefix: Path, name: str) -> Path | None:
    """The package's executable under ``prefix``, if it is fully there."""
    manifest = prefix / "node_modules" / name / "package.json"
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    bin_field = data.get("bin")
    if isinstance(bin_field, str):
        relative = bin_field
    elif isinstance(bin_field, dict) and bin_field:
        relative = bin_field.get(name.rsplit("/", 1)[-1]) or next(iter(bin_field.values()))
    else:
        return None
    script = manifest.parent / relative
    return script if script.is_file() else None


@dataclass(frozen=True)
class ServerCommand:
    """A stdio server, resolved: what to start, and whether in a sandbox."""

    spec: ProcessSpec
    """The server's program, its arguments, its environment on top of the
    sandbox's, the host paths it needs (read-only) and its network."""
    cwd: str | None = None
    sandboxed: bool = True

    def host_launch(self) -> ProcessLaunch:
        """For a server the config runs on the host (``sandbox = false``): as it is."""
        return ProcessLaunch(list(self.spec.argv), {**os.environ, **self.spec.env}, sandboxed=False)


def server_command(name: str, cfg: McpServer, *, cache: Path, workspace: Path) -> ServerCommand:
    """Resolve a stdio server's command (``npx``/``uvx`` packages installed into
    the cache) and what it needs from the host; one ``ConfigError`` naming the
    key for anything wrong in the config."""
    if not cfg.command:
        raise ConfigError(f"mcp.servers.{name}: a stdio server needs `command`")
    argv = [cfg.command, *cfg.args]
    binds: list[str] = []
    if Path(cfg.command).name == "npx":
        found = npm_package(cfg.args)
        if found is None:
            raise ConfigError(f"mcp.servers.{name}: npx without a package")
        package, rest = found
        argv = [*resolve_npx(package, cache), *rest]
        binds.append(str(cache))
    elif Path(cfg.command).name == "uvx":
        parsed = uvx_package(cfg.args)
        if parsed is None:
            raise ConfigError(f"mcp.servers.{name}: uvx without a package")
        requirements, command, rest = parsed
        argv = [str(resolve_uvx(requirements, command, cache)), *rest]
    program = argv[0]
    if cfg.cwd and "/" in program and not os.path.isabs(program):
        program = os.path.join(cfg.cwd, program)
    if shutil.which(program) is None:
        raise ConfigError(f"mcp.servers.{name}: {argv[0]} not found (no such program)")
    if not cfg.sandbox:
        return ServerCommand(ProcessSpec(argv, dict(cfg.env)), cfg.cwd, sandboxed=False)
    from luminaguard.sandbox.network import NetworkMode

    try:
        network = NetworkMode.parse(cfg.network)
    except LuminaGuardError as exc:
        raise ConfigError(f"mcp.servers.{name}.network: {exc}") from None
    if network.kind not in ("none", "host", "allow"):
        raise ConfigError(
            f"mcp.servers.{name}.network: use none, allow:HOST[,HOST...] or host for a server"
        )
    program, paths = host_paths(name, argv, binds, workspace)
    spec = ProcessSpec(
        [program, *argv[1:]],
        dict(cfg.env),
        tuple(paths),
        str(network),
        writable=cfg.workspace == "write",
    )
    return ServerCommand(spec)


def host_paths(
    name: str, argv: list[str], binds: list[str], workspace: Path
) -> tuple[str, list[str]]:
    """The program to run and the host paths it needs to see (read-only, at
    their own paths) for ``argv`` to start in a sandbox that has only /usr."""
    program = Path(argv[0])
    if not program.is_absolute():
        found = shutil.which(argv[0])
        if found is None:
            raise ConfigError(f"mcp.servers.{name}: {argv[0]} not found")
        program = Path(found)
    real = Path(os.path.realpath(program))
    venv = next((p for p in program.parents if (p / "pyvenv.cfg").exists()), None)
    if venv is not None:
        # A console script of a virtual environment: the environment is needed
        # too, not just the interpreter it links to.
        binds.append(str(venv))
        real = program
        base = Path(os.path.realpath(venv / "bin" / "python"))
        if not str(base).startswith("/usr/"):
            binds.append(str(base.parent.parent))
    elif not str(real).startswith("/usr/"):
        # A program outside /usr (pyenv, a venv, /opt) is bound read-only at its own path.
        binds.append(str(real.parent.parent if real.parent.name == "bin" else real.parent))
    for arg in argv[1:]:
        if (
            arg.startswith("/")
            and os.path.exists(arg)
            and not arg.startswith(("/usr/", str(workspace)))
            and not any(arg.startswith(b) for b in binds)
        ):
            if "/node_modules/" in arg:
                # A package's script needs the whole node_modules tree beside it.
                binds.append(arg.split("/node_modules/", 1)[0] + "/node_modules")
            else:
                binds.append(os.path.dirname(arg) if os.path.isfile(arg) else arg)
    return str(real), list(dict.fromkeys(binds))
