from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from luminaguard.audit.index import RunIndex
from luminaguard.audit.journal import GENESIS, Journal, record_hash, verify
from luminaguard.audit.run import RunRecorder


def make_run(data_dir: Path, n: int = 5) -> tuple[Path, dict[str, object]]:
    rec = RunRecorder(data_dir, task="t", workspace=Path("/ws"), model="scripted/x")
    for i in range(n):
        rec.record("step", {"i": i, "text": f"record {i}"})
    rec.finish("finished", {})
    row = RunIndex(data_dir / "index.db").get(rec.run_id)
    assert row is not None
    return rec.path, row


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def rewrite(path: Path, new_lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in new_lines))


def check(path: Path, row: dict[str, object]) -> list[str]:
    return [str(p) for p in verify(path, row["records"], row["head"])]  # type: ignore[arg-type]


def test_an_untouched_journal_verifies(data_dir: Path) -> None:
    path, row = make_run(data_dir)
    assert check(path, row) == []
    recs = [json.loads(line) for line in lines(path)]
    assert recs[0]["prev"] == GENESIS
    assert all(b["prev"] == a["hash"] for a, b in itertools.pairwise(recs))
    assert row["records"] == len(recs)


def test_an_edited_record_is_caught_at_its_line(data_dir: Path) -> None:
    path, row = make_run(data_dir)
    ls = lines(path)
    rec = json.loads(ls[3])
    rec["data"]["text"] = "something else"
    ls[3] = json.dumps(rec)
    rewrite(path, ls)
    problems = check(path, row)
    assert any(p.startswith("line 4:") and "edited" in p for p in problems)


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(data_dir: Path) -> None:
    path, row = make_run(data_dir)
    ls = lines(path)
    rec = json.loads(ls[2])
    rec["data"]["text"] = "forged"
    rec["hash"] = record_hash(rec)
    ls[2] = json.dumps(rec)
    rewrite(path, ls)
    problems = check(path, row)
    assert any(p.startswith("line 4:") and "does not chain" in p for p in problems)


def test_a_removed_record_is_caught(data_dir: Path) -> None:
    path, row = make_run(data_dir)
    ls = lines(path)
    del ls[2]
    rewrite(path, ls)
    problems = check(path, row)
    assert any(p.startswith("line 3:") and "removed" in p for p in problems)


def test_reordered_records_are_caught(data_dir: Path) -> None:
    path, row = make_run(data_dir)
    ls = lines(path)
    ls[2], ls[3] = ls[3], ls[2]
    rewrite(path, ls)
    problems = check(path, row)
    assert any(p.startswith("line 3:") and "reordered" in p for p in problems)


def test_a_cut_off_tail_is_caught_against_the_index(data_dir: Path) -> None:
    path, row = make_run(data_dir)
    rewrite(path, lines(path)[:-2])
    problems = check(path, row)
    assert problems and "removed at the end" in problems[0]


def test_a_fully_rewritten_chain_is_caught_against_the_index_head(data_dir: Path) -> None:
    path, row = make_run(data_dir)
    forged = []
    prev = GENESIS
    for line in lines(path):
        rec = json.loads(line)
        rec["data"] = {"forged": True}
        rec["prev"] = prev
        rec["hash"] = record_hash(rec)
        prev = rec["hash"]
        forged.append(json.dumps(rec))
    rewrite(path, forged)
    problems = check(path, row)
    assert (
        "the last record is not the one the index recorded (journal replaced or rewritten)"
        in problems
    )
    # The hashes were recomputed, the signatures could not be.
    assert "line 1: its signature does not match (record 0 was forged)" in problems


def test_a_journal_rewritten_end_to_end_with_its_index_fails_on_its_signatures(
    data_dir: Path,
) -> None:
    import sqlite3

    path, row = make_run(data_dir)
    forged, prev = [], GENESIS
    for line in lines(path):
        rec = json.loads(line)
        rec["data"] = {"forged": True}
        rec["prev"] = prev
        rec.pop("sig", None)
        rec["hash"] = record_hash(rec)
        prev = rec["hash"]
        forged.append(json.dumps(rec))
    rewrite(path, forged)
    db = sqlite3.connect(data_dir / "index.db")
    db.execute("UPDATE runs SET head = ?, records = ? WHERE id = ?", (prev, len(forged), row["id"]))
    db.commit()
    db.close()
    problems = check(path, {"records": len(forged), "head": prev})
    assert problems and all("not signed" in p for p in problems), problems


def test_a_journal_signed_with_another_key_fails(data_dir: Path, tmp_path: Path) -> None:
    from luminaguard.audit.signing import Signer

    path, _row = make_run(data_dir)
    other = Signer(b"\x01" * 32)
    forged, prev = [], GENESIS
    for n, line in enumerate(lines(path)):
        rec = json.loads(line)
        rec["data"] = {"forged": True}
        rec["prev"] = prev
        if n == 0:
            rec["key"] = other.public
        rec["hash"] = record_hash(rec)
        rec["sig"] = other.sign(rec["hash"])
        prev = rec["hash"]
        forged.append(json.dumps(rec))
    rewrite(path, forged)
    problems = check(path, {"records": len(forged), "head": prev})
    assert problems and all("not this user's key" in p for p in problems), problems


def test_a_line_that_is_not_json_is_caught(data_dir: Path) -> None:
    path, row = make_run(data_dir)
    ls = lines(path)
    ls[1] = "garbage"
    rewrite(path, ls)
    assert any(p.startswith("line 2:") for p in check(path, row))


def test_a_missing_journal_is_a_problem_not_a_crash(data_dir: Path) -> None:
    path, row = make_run(data_dir)
    path.unlink()
    assert "does not exist" in check(path, row)[0]


def test_each_append_is_on_disk_when_it_returns(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.jsonl")
    j.append("a", {"x": 1})
    assert json.loads((tmp_path / "j.jsonl").read_text())["type"] == "a"
    j.close()


@pytest.mark.parametrize("prefix_len", [8, 22])
def test_runs_can_be_found_by_a_unique_prefix(data_dir: Path, prefix_len: int) -> None:
    path, row = make_run(data_dir, 1)
    index = RunIndex(data_dir / "index.db")
    found = index.get(str(row["id"])[:prefix_len])
    assert found is not None and found["path"] == str(path)


def _open_index(path: str) -> None:
    RunIndex(Path(path)).close()


def test_many_processes_can_create_the_index_at_once(tmp_path: Path) -> None:
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_open_index, args=(str(tmp_path / "index.db"),)) for _ in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0] * 8


def test_heads_are_exported_to_a_witness_file(data_dir: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    _path, row = make_run(data_dir)
    witness = tmp_path / "witness.jsonl"
    r = subprocess.run(
        [sys.executable, "-m", "luminaguard", "audit", "export", "--to", str(witness)],
        capture_output=True, encoding="utf-8", timeout=60, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    [line] = witness.read_text().splitlines()
    head = json.loads(line)
    assert head["head"] == row["head"] and head["records"] == row["records"] and head["key"]


def test_the_journal_key_is_private_to_its_owner(data_dir: Path) -> None:
    import stat

    from luminaguard.audit.signing import key_path

    make_run(data_dir)
    assert stat.S_IMODE(key_path().stat().st_mode) == 0o600
    assert stat.S_IMODE(key_path().parent.stat().st_mode) == 0o700
