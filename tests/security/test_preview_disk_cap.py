"""A preview's copy-on-write layer has a total size cap, enforced while the
command runs: a denied action cannot fill the host's disk."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from luminaguard.config import SandboxSettings
from luminaguard.core.risk import Risk
from luminaguard.policy.effects import classify_effects
from luminaguard.sandbox.bwrap import BwrapSandbox
from luminaguard.sandbox.preview import tree_size
from tests.conftest import require_backend


def test_a_preview_that_writes_past_its_cap_is_stopped_and_red(workspace: Path) -> None:
    settings = SandboxSettings(timeout_s=60, pool_size=0, preview_disk_mb=16, max_file_mb=512)
    sandbox = BwrapSandbox(workspace, settings)
    script = "for i in $(seq 1 40); do head -c 10000000 /dev/zero > part$i; done; echo all-written"
    p = asyncio.run(sandbox.preview(["/bin/bash", "-c", script]))
    try:
        written = tree_size(Path(p.handle) / "upper", 1 << 40)
        assert "all-written" not in p.result.stdout, "the preview ran to the end"
        assert written < 120 * 1024 * 1024, f"{written} bytes written past a 16 MiB cap"
        a = classify_effects(p.effects, timed_out=p.result.timed_out)
        assert a.risk == Risk.RED and any("disk cap" in r.text for r in a.reasons)
    finally:
        sandbox.discard(p.handle)


def test_a_sparse_file_counts_in_full(tmp_path: Path) -> None:
    with open(tmp_path / "sparse", "wb") as f:
        f.truncate(1 << 30)
    assert tree_size(tmp_path, 1 << 40) >= 1 << 30


def test_a_micro_vm_preview_past_its_cap_brings_nothing_back_and_is_red(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guest's layer is in the guest (its memory, bounded by the VM): what
    is larger than the cap is never unpacked on the host, and the card is RED."""
    require_backend("microvm", monkeypatch)
    from luminaguard.vm.backend import MicrovmSandbox

    settings = SandboxSettings(timeout_s=120, pool_size=1, preview_disk_mb=1, max_file_mb=64)
    sandbox = MicrovmSandbox(workspace, settings)
    script = "for i in 1 2 3; do head -c 1000000 /dev/urandom > part$i; done; echo written"
    p = asyncio.run(sandbox.preview(["/bin/sh", "-c", script]))
    try:
        assert "written" in p.result.stdout, p.result.stderr
        assert tree_size(Path(p.handle) / "upper", 1 << 40) < 1024 * 1024
        a = classify_effects(p.effects, timed_out=p.result.timed_out)
        assert a.risk == Risk.RED and any("disk cap" in r.text for r in a.reasons)
    finally:
        sandbox.discard(p.handle)
