"""Small static programs compiled from C, for inside a sandbox or a guest.

Compiled with the host's gcc (``-static``, so nothing in the sandbox is
linked against) and cached by source hash in the user's cache directory:
built once per machine and source, at first use. Where no compiler is, the
caller uses its stdlib-Python twin instead.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from luminaguard.errors import CompileError

SUPERVISOR_SOURCE = Path(__file__).with_name("supervisor.c")
LAUNCH_SOURCE = Path(__file__).with_name("launch.c")


def compile_static(source: Path, out: Path) -> None:
    """``source`` compiled statically (and stripped) to ``out``; CompileError if not."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise CompileError("gcc is not installed (Debian: apt-get install gcc libc6-dev)")
    done = subprocess.run(
        [gcc, "-static", "-O2", "-s", "-o", str(out), str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise CompileError(f"compiling {source.name}: {(done.stderr or done.stdout).strip()[:500]}")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "luminaguard" / "native"


@functools.cache
def supervisor() -> Path | None:
    """The compiled warm-sandbox supervisor, or None where it cannot be built."""
    try:
        return cached(SUPERVISOR_SOURCE)
    except (CompileError, OSError):
        return None


@functools.cache
def launcher() -> Path | None:
    """The compiled host-side launcher (``launcher.py``), or None where it cannot be built."""
    try:
        return cached(LAUNCH_SOURCE)
    except (CompileError, OSError):
        return None


def cached(source: Path) -> Path:
    """``source`` compiled, from the cache or built into it now."""
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    where = cache_dir()
    path = where / f"{source.stem}-{digest}"
    where.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not _ours(where):
        raise CompileError(f"{where} can be changed by others than its owner: not used")
    if path.is_file() and _ours(path):
        return path
    # Built beside its final name and renamed: another process building it
    # at the same time is harmless, and nobody sees half a binary.
    fd, tmp = tempfile.mkstemp(dir=where, prefix=f".{source.stem}-")
    os.close(fd)
    try:
        compile_static(source, Path(tmp))
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def _ours(path: Path) -> bool:
    """Ours, not a symlink, and only we can change it: what a cached binary
    and its directory must be before it is run."""
    st = path.lstat()
    return not path.is_symlink() and st.st_uid == os.geteuid() and not st.st_mode & 0o022
