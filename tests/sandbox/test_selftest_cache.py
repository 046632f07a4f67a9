"""A self-test pass is remembered across processes while nothing it depends on
changes; a failure never is."""

from __future__ import annotations

from pathlib import Path

import pytest

from luminaguard.config import SandboxSettings
from luminaguard.errors import SandboxUnavailable
from luminaguard.sandbox import selftest
from luminaguard.sandbox.selftest import Gate, PassCache


class Counting:
    def __init__(self, answer: str | None = None) -> None:
        self.answer = answer
        self.runs = 0

    def __call__(self, settings: SandboxSettings) -> str | None:
        self.runs += 1
        return self.answer


def fresh(test: Counting, binary: Path | None = None) -> Gate:
    """A gate as a new process has it: nothing known yet."""
    return Gate(test, name="test", binaries=lambda: [str(binary)] if binary else [])


def test_a_pass_is_remembered_by_the_next_process(data_dir: Path) -> None:
    test = Counting()
    fresh(test).check(SandboxSettings())
    second = fresh(test)
    second.check(SandboxSettings())
    assert test.runs == 1 and second.cached
    assert (data_dir / "selftest-passes.json").stat().st_mode & 0o777 == 0o600


def test_a_failure_is_never_remembered(data_dir: Path) -> None:
    test = Counting("the seccomp filter is not in force")
    for _ in range(2):
        with pytest.raises(SandboxUnavailable, match="seccomp"):
            fresh(test).check(SandboxSettings())
    assert test.runs == 2
    assert not (data_dir / "selftest-passes.json").exists()


def test_other_settings_a_changed_binary_or_changed_code_test_again(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = tmp_path / "bwrap"
    binary.write_text("v1")
    test = Counting()
    fresh(test, binary).check(SandboxSettings())
    fresh(test, binary).check(SandboxSettings(memory_mb=512))
    assert test.runs == 2
    binary.write_text("version 2")  # replaced, as by an upgrade
    fresh(test, binary).check(SandboxSettings())
    assert test.runs == 3
    monkeypatch.setattr(selftest, "_code_hash", lambda: "edited")
    fresh(test, binary).check(SandboxSettings())
    assert test.runs == 4


def test_an_old_or_unreadable_cache_means_the_test_runs(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    test = Counting()
    fresh(test).check(SandboxSettings())
    max_age = PassCache.MAX_AGE_S
    monkeypatch.setattr(PassCache, "MAX_AGE_S", 0)
    fresh(test).check(SandboxSettings())
    assert test.runs == 2
    monkeypatch.setattr(PassCache, "MAX_AGE_S", max_age)
    (data_dir / "selftest-passes.json").write_text("{not json")
    fresh(test).check(SandboxSettings())
    assert test.runs == 3


def test_an_unnamed_gate_never_uses_the_cache(data_dir: Path) -> None:
    test = Counting()
    for _ in range(2):
        Gate(test).check(SandboxSettings())
    assert test.runs == 2
