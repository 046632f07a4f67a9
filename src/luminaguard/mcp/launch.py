"""How a stdio MCP server is started: inside the sandbox by default.

A config written the way users write it for other clients must just work:
`command = "npx", args = ["-y", "@modelcontextprotocol/server-memory"]`.
The sandbox has no network, so such a package is resolved and installed
*outside* it first, into a cache LuminaGuard manages
(`<data_dir>/mcp-cache/npm/<package>`), and started from there with `node`,
the cache mounted read-only. Everything else about the sandbox is the same as
for tool calls: namespaces, seccomp, no capabilities, limits, a clean
environment (plus the server's own `env`), the workspace as the only writable
directory.

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
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from luminaguard.config import McpServer, SandboxSettings
from luminaguard.errors import ConfigError, LuminaGuardError, SandboxError

if TYPE_CHECKING:
    from luminaguard.sandbox.cgroups import Cgroup
    from luminaguard.sandbox.network import NetworkMode

INSTALL_TIMEOUT_S = 600


@dataclass
class StdioLaunch:
    command: str
    args: list[str]
    env: dict[str, str]
    cwd: str | None
    sandboxed: bool
    cleanup: list[Path] = field(default_factory=list)
    cgroup: Cgroup | None = None
    proxy: tuple[NetworkMode, Path] | None = None
    """With an allow-list: the egress proxy to run (mode, socket directory) while the server lives."""

    def close(self) -> None:
        if self.cgroup is not None:
            self.cgroup.destroy()
        for path in self.cleanup:
            shutil.rmtree(path, ignore_errors=True)


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
            shutil.rmtree(target, ignore_errors=True)
            # OSError: another process got a complete install there first.
            with contextlib.suppress(OSError):
                staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        script = _npm_script(target, name)
        assert script is not None
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
    import fcntl
    import sys

    key = re.sub(r"[^a-zA-Z0-9._-]+", "_", "+".join(requirements))
    target = cache / "uv" / key
    script = target / "bin" / command
    marker = target / ".luminaguard-complete"
    if marker.exists() and script.exists():
        return script
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and script.exists():
            return script
        shutil.rmtree(target, ignore_errors=True)
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
    return script


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


def stdio_launch(
    name: str, cfg: McpServer, *, workspace: Path, cache: Path, settings: SandboxSettings
) -> StdioLaunch:
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
    if not cfg.sandbox:
        env = {**os.environ, **cfg.env}
        return StdioLaunch(argv[0], argv[1:], env, cfg.cwd, sandboxed=False)
    return _sandboxed(name, cfg, argv, binds, workspace, settings)


def _sandboxed(
    name: str,
    cfg: McpServer,
    argv: list[str],
    binds: list[str],
    workspace: Path,
    settings: SandboxSettings,
) -> StdioLaunch:
    from luminaguard.sandbox import seccomp
    from luminaguard.sandbox.bwrap import (
        GROUP,
        PASSWD,
        Layout,
        build_argv,
        find_bwrap,
        limits_of,
        sandbox_env,
    )
    from luminaguard.sandbox.cgroups import Cgroup
    from luminaguard.sandbox.network import NetworkMode

    try:
        network = NetworkMode.parse(cfg.network)
    except LuminaGuardError as exc:
        raise ConfigError(f"mcp.servers.{name}.network: {exc}") from None
    if network.kind not in ("none", "host", "allow"):
        raise ConfigError(
            f"mcp.servers.{name}.network: use none, allow:HOST[,HOST...] or host for a server"
        )
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
    private = Path(tempfile.mkdtemp(prefix=f"lg-mcp-{name}-"))
    files = {
        "seccomp": private / "filter.bpf",
        "passwd": private / "passwd",
        "group": private / "group",
    }
    files["seccomp"].write_bytes(seccomp.filter_program())
    files["passwd"].write_text(PASSWD)
    files["group"].write_text(GROUP)
    fds = {"seccomp": 7, "passwd": 8, "group": 9}
    proxy_dir = None
    env = dict(cfg.env)
    if network.proxied:
        # Requests go through the host-side egress proxy, which lets only the
        # allowed hosts through and logs every request; node honours the
        # proxy variables only when told to.
        proxy_dir = private / "net"
        proxy_dir.mkdir()
        env = {"NODE_USE_ENV_PROXY": "1", **env}
    layout = Layout(
        workspace,
        "rw",
        network,
        proxy_dir=proxy_dir,
        ro_binds=tuple((b, b) for b in dict.fromkeys(binds)),
        env=tuple(env.items()),
    )
    inner = build_argv(find_bwrap(), layout, fds, [str(real), *argv[1:]])
    cgroup = Cgroup.for_settings(settings)
    launcher = limits_of(settings).launcher(cgroup.procs_files()) or []
    if not launcher:
        cgroup.destroy()
        raise SandboxError("prlimit (util-linux) is needed to start a sandboxed MCP server")
    # The SDK starts the process itself and passes no extra descriptors, so a
    # small shell opens bwrap's data files as fds 7-9 (dash takes one digit) just before exec.
    opener = 'exec 7<"$1" 8<"$2" 9<"$3"; shift 3; exec "$@"'
    command = [
        "/bin/sh",
        "-c",
        opener,
        "sh",
        str(files["seccomp"]),
        str(files["passwd"]),
        str(files["group"]),
        *launcher,
        *inner,
    ]
    return StdioLaunch(
        command[0],
        command[1:],
        sandbox_env(layout),
        None,
        sandboxed=True,
        cleanup=[private],
        cgroup=cgroup,
        proxy=(network, proxy_dir) if proxy_dir is not None else None,
    )
