"""Copy-on-write preview of a command, and commit of exactly what it did.

``run_preview`` runs the command in a sandbox whose workspace is an overlay:
the real workspace is the read-only lower layer and every write lands in a
throw-away upper directory. The network is cut, but a recording proxy is
offered, so a proxy-aware client's attempt shows up as a network effect. The
effects are read from the upper directory alone, so their cost grows with what
the command changed, not with the size of the workspace.

A preview's handle is the directory holding its layer and ``preview.json``
(the effects and the state of every touched path), so it is data: whoever
holds the handle on this host can ``commit`` or ``discard`` it. ``commit``
applies exactly those changes to the real workspace. It first checks that
every path it touches is still as it was when previewed (else
``CommitConflict``, nothing applied), then applies them as one transaction
through the workspace helpers, which never follow a symlink: a failure
part-way undoes what was done, so a commit lands whole or not at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from luminaguard.config import SandboxSettings
from luminaguard.core.effects import Effects, Modified, unified_diff
from luminaguard.core.paths import points_outside
from luminaguard.errors import CommitConflict, SandboxError, ToolError
from luminaguard.protocols import ExecResult, Preview
from luminaguard.sandbox.network import RECORD, NetworkMode
from luminaguard.sandbox.workspace import Transaction, Workspace

if TYPE_CHECKING:
    from luminaguard.sandbox.spawn import Spawn

Runner = Callable[[Path], Awaitable[tuple[ExecResult, list[dict[str, object]], bool]]]
"""Runs the previewed command, leaving its writes in the upper directory
given; and its network attempts, and whether it wrote past the disk cap (its
writes are then not all there)."""

OPAQUE_XATTRS = ("user.overlay.opaque", "trusted.overlay.opaque")

# Error output that betrays an effect the sandbox blocked without our seeing it.
SUSPECT_NETWORK = re.compile(
    r"Network is unreachable|Could not resolve host|Temporary failure in name resolution|"
    r"Name or service not known|getaddrinfo failed|nodename nor servname|Failed to connect to|"
    r"Connection refused|No route to host",
    re.IGNORECASE,
)
SUSPECT_OUTSIDE_WRITE = re.compile(r"Read-only file system", re.IGNORECASE)


@dataclass(frozen=True)
class State:
    """What a workspace path was: its type, and for files their hash and mode."""

    kind: str  # "file" | "dir" | "link" | "missing" | "other"
    sha256: str = ""
    mode: int = 0
    target: str = ""

    @classmethod
    def of(cls, path: Path) -> State:
        try:
            st = path.lstat()
        except FileNotFoundError:
            return cls("missing")
        if stat.S_ISLNK(st.st_mode):
            return cls("link", target=os.readlink(path))
        if stat.S_ISDIR(st.st_mode):
            return cls("dir", mode=stat.S_IMODE(st.st_mode))
        if stat.S_ISREG(st.st_mode):
            return cls("file", _sha256(path), stat.S_IMODE(st.st_mode))
        return cls("other", mode=stat.S_IMODE(st.st_mode))


STATE_FILE = "preview.json"
PREFIX = "lg-preview-"


async def run_preview(
    workspace: Path,
    settings: SandboxSettings,
    argv: Sequence[str],
    *,
    stdin: str | None = None,
    timeout_s: float | None = None,
    ro_binds: tuple[tuple[str, str], ...] = (),
    network: NetworkMode = RECORD,
    spawner: type[Spawn] | None = None,
    runner: Runner | None = None,
) -> Preview:
    """Run ``argv`` on an overlay of ``workspace``; the preview's handle is the
    directory holding its layer and what the commit checks (``preview.json``),
    so any process on this host can commit or discard it by handle.

    The command runs in a sandbox started by ``spawner`` (bubblewrap's unless
    a backend says), or, for a backend that keeps its own layer elsewhere (a
    micro-VM's is in the guest), by ``runner``, which leaves what the command
    wrote in the upper directory it is given, as overlayfs would."""
    from luminaguard.sandbox.bwrap import launch
    from luminaguard.sandbox.profile import Layout
    from luminaguard.sandbox.spawn import Spawn

    ws = Workspace(workspace)
    # Upper and work dirs must share a file system that supports overlay's
    # whiteouts and xattrs; a private temp dir on the host does.
    tmp = Path(tempfile.mkdtemp(prefix=PREFIX))
    upper, work = tmp / "upper", tmp / "work"
    upper.mkdir()
    work.mkdir()
    layout = Layout(ws.root, "overlay", network, upper=upper, work=work, ro_binds=ro_binds)
    cap = settings.preview_disk_mb * 1024 * 1024
    # The conflict baseline is the workspace as it was when the preview
    # started: a path another writer changes while the command runs is stale.
    started_ns = time.time_ns()
    try:
        over_cap = False
        if runner is not None:
            result, attempts, over_cap = await runner(upper)
        else:
            result, attempts = await launch(
                layout,
                settings,
                argv,
                stdin=stdin,
                timeout_s=timeout_s,
                stop_when=lambda: tree_size(upper, cap) > cap,
                spawner=spawner or Spawn,
            )
        effects, before = scan(upper, ws.root)
        if over_cap or tree_size(upper, cap) > cap:
            effects.unobserved.append(
                f"the preview wrote more than its disk cap of {settings.preview_disk_mb} MiB "
                "and was stopped, so its effects are incomplete"
            )
        # "blocked" says what the proxy did, not what it was meant to do.
        effects.network = [dict(a, blocked=not a["allowed"]) for a in attempts]
        _suspect(effects, result)
        state = {
            "workspace": str(ws.root),
            "argv": list(argv),
            "effects": effects.to_dict(),
            "before": {p: asdict(s) for p, s in before.items()},
            "changed_meanwhile": changed_since(ws.root, before, started_ns),
        }
        (tmp / STATE_FILE).write_text(json.dumps(state), encoding="utf-8")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Preview(str(tmp), list(argv), result, effects)


def _layer(handle: str) -> Path:
    """The preview directory named by ``handle``; only one of ours is accepted."""
    path = Path(handle)
    if path.parent != Path(tempfile.gettempdir()) or not path.name.startswith(PREFIX):
        raise SandboxError(f"{handle!r} is not a preview handle")
    return path


def discard(handle: str) -> None:
    shutil.rmtree(_layer(handle), ignore_errors=True)


def commit(handle: str, workspace: Path) -> None:
    """Apply exactly the previewed changes to ``workspace``, or nothing on conflict."""
    layer = _layer(handle)
    try:
        state = json.loads((layer / STATE_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SandboxError("this preview was already committed or discarded") from None
    except (OSError, ValueError) as exc:
        raise SandboxError(f"preview {handle} cannot be read: {exc}") from exc
    ws = Workspace(workspace)
    if Path(state["workspace"]) != ws.root:
        raise SandboxError(f"preview {handle} was made of {state['workspace']}, not {ws.root}")
    upper = layer / "upper"
    before = {p: State(**s) for p, s in state["before"].items()}
    # Every path must still resolve inside the workspace and be as it was:
    # checked for all of them before anything is applied.
    stale = sorted(
        {
            *state.get("changed_meanwhile", []),
            *(
                p
                for p, was in before.items()
                if not ws.is_inside(str(Path(p).parent)) or State.of(ws.root / p) != was
            ),
        }
    )
    if stale:
        raise CommitConflict(stale)
    e = Effects.from_dict(state["effects"])
    # Gone before anything is applied: a second commit of the same preview,
    # even a concurrent one, finds nothing to apply.
    (layer / STATE_FILE).unlink()
    try:
        with ws.transaction() as t:
            _apply(t, upper, e)
    except (ToolError, OSError) as exc:
        raise SandboxError(
            f"the commit failed, so nothing of it was applied (every change was undone): {exc}"
            if "could not be put back" not in str(exc)
            else f"the commit failed part-way: {exc}"
        ) from exc
    finally:
        shutil.rmtree(layer, ignore_errors=True)


def _apply(t: Transaction, upper: Path, e: Effects) -> None:
    """Every change through the workspace's descriptor-relative helpers, in one
    transaction: none follows a symlink, not even one swapped in while the
    commit runs, and a failure part-way undoes what was done."""
    for rel in sorted(e.deleted, key=lambda p: -p.count("/")):
        t.remove(rel)
    # Modes: permission bits only, and exec bits only where the card showed
    # them (`executables`, `mode_changes`); never setuid, setgid or sticky.
    shown = {x["path"]: int(x["mode"]) & 0o777 for x in e.executables}
    for rel in sorted(e.created_dirs, key=lambda p: p.count("/")):
        t.make_dir(rel, stat.S_IMODE((upper / rel).lstat().st_mode) & 0o777)
    for rel in e.created:
        mode = shown.get(rel, stat.S_IMODE((upper / rel).lstat().st_mode) & 0o666)
        t.write(rel, (upper / rel).read_bytes(), mode)
    for m in e.modified:
        t.write(m.path, (upper / m.path).read_bytes())
    for link in e.symlinks:
        t.symlink(link["path"], link["target"])
    for change in e.mode_changes:
        t.chmod(change["path"], int(change["after"]))


def tree_size(root: Path, stop_above: int) -> int:
    """Bytes under ``root``: the larger of what each file holds and what it
    takes on disk (a sparse file counts in full: a commit would write it out);
    the count stops early once past ``stop_above``."""
    total = 0
    stack = [root]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                stack.append(Path(entry.path))
            total += max(st.st_size, st.st_blocks * 512)
            if total > stop_above:
                return total
    return total


def _suspect(effects: Effects, result: ExecResult) -> None:
    output = result.stdout[-65536:] + "\n" + result.stderr[-65536:]
    if not effects.network and (m := SUSPECT_NETWORK.search(output)):
        effects.network.append({"suspected": True, "evidence": m.group(0)})
        effects.unobserved.append(
            f"a network attempt is suspected from the output ({m.group(0)!r})"
        )
    if m := SUSPECT_OUTSIDE_WRITE.search(output):
        effects.unobserved.append(
            f"a write outside the workspace is suspected from the output ({m.group(0)!r})"
        )


def changed_since(root: Path, before: dict[str, State], started_ns: int) -> list[str]:
    """The touched paths that changed after ``started_ns``, while the preview
    ran: the state the commit would check against is not what the command saw."""
    changed = []
    for rel in before:
        try:
            st = (root / rel).lstat()
        except FileNotFoundError:
            continue
        if st.st_ctime_ns >= started_ns:
            changed.append(rel)
    return sorted(changed)


def scan(upper: Path, lower: Path) -> tuple[Effects, dict[str, State]]:
    """Read the effects from an overlay upper directory over ``lower``."""
    effects = Effects()
    before: dict[str, State] = {}
    _scan_dir(upper, lower, "", effects, before)
    for bucket in (effects.created, effects.created_dirs, effects.deleted):
        bucket.sort()
    effects.modified.sort(key=lambda m: m.path)
    return effects, before


def _scan_dir(
    upper: Path, lower: Path, rel: str, effects: Effects, before: dict[str, State]
) -> None:
    here = upper / rel if rel else upper
    with os.scandir(here) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        path_rel = f"{rel}/{entry.name}" if rel else entry.name
        st = entry.stat(follow_symlinks=False)
        low = lower / path_rel
        was = State.of(low)
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:  # an overlay whiteout: deleted
            before[path_rel] = was
            _deleted(low, path_rel, was, effects, before)
            continue
        if stat.S_ISDIR(st.st_mode):
            if was.kind != "dir":
                before[path_rel] = was
                if was.kind != "missing":
                    _deleted(low, path_rel, was, effects, before)
                effects.created_dirs.append(path_rel)
                _plain_mode(path_rel, st.st_mode, effects)
            else:
                if _is_opaque(Path(entry.path)):
                    # The directory was replaced: whatever the lower layer had
                    # below it and the upper one does not is gone.
                    present = {e.name for e in os.scandir(entry.path)}
                    for child in sorted(os.listdir(low)):
                        if child not in present:
                            child_rel = f"{path_rel}/{child}"
                            child_state = State.of(low / child)
                            before[child_rel] = child_state
                            _deleted(low / child, child_rel, child_state, effects, before)
                new_mode = _plain_mode(path_rel, st.st_mode, effects)
                if new_mode != was.mode & 0o777:
                    before[path_rel] = was
                    effects.mode_changes.append(
                        {"path": path_rel, "before": was.mode, "after": new_mode}
                    )
            _scan_dir(upper, lower, path_rel, effects, before)
            continue
        before[path_rel] = was
        if stat.S_ISLNK(st.st_mode):
            target = os.readlink(entry.path)
            if was.kind == "link" and was.target == target:
                continue
            if was.kind not in ("missing", "link"):
                _deleted(low, path_rel, was, effects, before)
            effects.symlinks.append(
                {"path": path_rel, "target": target, "outside": points_outside(path_rel, target)}
            )
            continue
        if stat.S_ISREG(st.st_mode):
            mode = _plain_mode(path_rel, st.st_mode, effects)
            if was.kind != "file":
                if was.kind != "missing":
                    _deleted(low, path_rel, was, effects, before)
                effects.created.append(path_rel)
                if mode & 0o111:
                    effects.executables.append({"path": path_rel, "mode": mode})
            else:
                if _sha256(Path(entry.path)) != was.sha256:
                    effects.modified.append(_modified(low, Path(entry.path), path_rel))
                if mode != was.mode & 0o777:
                    effects.mode_changes.append(
                        {"path": path_rel, "before": was.mode, "after": mode}
                    )
            continue
        effects.unobserved.append(
            f"{path_rel}: a special file (fifo, socket or device) was created"
        )


def _plain_mode(rel: str, st_mode: int, effects: Effects) -> int:
    """The permission bits a commit may apply: never setuid, setgid or sticky
    (a file written by the host as root would carry them for real); that a
    command set them is itself worth a look."""
    if stat.S_IMODE(st_mode) & 0o7000:
        effects.unobserved.append(
            f"{rel}: setuid, setgid or sticky bits were set; they are never committed"
        )
    return stat.S_IMODE(st_mode) & 0o777


def _deleted(low: Path, rel: str, was: State, effects: Effects, before: dict[str, State]) -> None:
    """``rel`` is gone (or replaced): it and, for a directory, everything under
    it (files, links and directories alike) is on the card and checked at commit."""
    if was.kind == "dir":
        for here, dirs, files in os.walk(low):
            sub = os.path.relpath(here, low)
            for name in [*files, *dirs]:
                child = os.path.normpath(f"{rel}/{sub}/{name}")
                before[child] = State.of(Path(here) / name)
                effects.deleted.append(child)
    if was.kind != "missing":
        effects.deleted.append(rel)


def _is_opaque(path: Path) -> bool:
    for name in OPAQUE_XATTRS:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False


def _modified(low: Path, high: Path, rel: str) -> Modified:
    old, new = low.read_bytes(), high.read_bytes()
    if b"\x00" in old[:8192] or b"\x00" in new[:8192]:
        return Modified(
            rel,
            f"binary file {rel}: {len(old)} → {len(new)} bytes, sha256 {_sha256_bytes(old)[:12]} → {_sha256_bytes(new)[:12]}",
            True,
            len(old),
            len(new),
        )
    diff = unified_diff(old.decode("utf-8", "replace"), new.decode("utf-8", "replace"), rel)
    return Modified(rel, diff, False, len(old), len(new))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
