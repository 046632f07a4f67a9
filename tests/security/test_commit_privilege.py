"""Commits carry no privilege: a file the host writes as root never gets a
setuid, setgid or sticky bit from a preview, and exec bits only where the card
showed them."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

from luminaguard.config import SandboxSettings
from luminaguard.core.risk import Risk
from luminaguard.policy.effects import classify_effects
from luminaguard.sandbox.bwrap import BwrapSandbox
from luminaguard.ui.terminal import render_preview

SCRIPT = (
    "cp /bin/true tool; chmod 4755 tool; cp /bin/true plain; chmod 2711 plain;"
    " mkdir shared; chmod 1777 shared; chmod g+s a.txt; echo data > notes; chmod 644 notes"
)


def test_a_committed_preview_never_carries_setuid_setgid_or_sticky_bits(workspace: Path) -> None:
    (workspace / "a.txt").write_text("x\n")
    sandbox = BwrapSandbox(workspace, SandboxSettings(timeout_s=30, pool_size=0))
    p = asyncio.run(sandbox.preview(["/bin/bash", "-c", SCRIPT]))
    assert p.result.exit_code == 0, p.result.stderr
    # The card says so, and shows the exec bits it will apply.
    assessment = classify_effects(p.effects)
    assert assessment.risk == Risk.RED
    assert any("setuid" in str(r) for r in assessment.reasons)
    assert {x["path"]: x["mode"] for x in p.effects.executables} == {
        "tool": 0o755,
        "plain": 0o711,
    }
    shown = render_preview({**p.to_dict(), **assessment.to_dict()})
    assert "tool  (executable, mode 755)" in shown
    sandbox.commit(p.handle)
    modes = {
        name: stat.S_IMODE((workspace / name).stat().st_mode)
        for name in ("tool", "plain", "shared", "a.txt", "notes")
    }
    assert modes == {
        "tool": 0o755,
        "plain": 0o711,
        "shared": 0o777,
        "a.txt": 0o644,
        "notes": 0o644,
    }
