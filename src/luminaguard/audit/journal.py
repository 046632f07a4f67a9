"""An append-only run journal where every record carries the hash of the one before.

Each line is one JSON record::

    {"seq": 3, "ts": "2026-11-21T23:12:04.123456Z", "type": "tool_call",
     "data": {...}, "prev": "<hash of record 2>", "hash": "<sha256 of this record>"}

The hash covers the canonical JSON of every field but ``hash``; the first
record's ``prev`` is 64 zeros. Editing a record breaks its hash, removing or
reordering records breaks ``seq`` and ``prev``, and cutting the tail is caught
against the head the run index holds. Each record is flushed and fsynced
before ``append`` returns: a step is on disk before the next one starts.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from luminaguard.audit.signing import Signer, fingerprint, signed_by, user_public_key
from luminaguard.errors import AuditError
from luminaguard.store import private_file

GENESIS = "0" * 64


def record_hash(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k not in ("hash", "sig")}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Journal:
    """The writer of one run's journal."""

    def __init__(
        self, path: Path, *, head: str = GENESIS, seq: int = 0, signer: Signer | None = None
    ) -> None:
        self.path = path
        self.head = head
        self.seq = seq
        self.signer = signer
        try:
            self._file = open(private_file(path), "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise AuditError(f"cannot open journal {path}: {exc}") from exc

    def append(self, type: str, data: dict[str, Any]) -> dict[str, Any]:
        record: dict[str, Any] = {
            "seq": self.seq,
            "ts": now_iso(),
            "type": type,
            "data": data,
            "prev": self.head,
        }
        if self.signer is not None and self.seq == 0:
            record["key"] = self.signer.public  # covered by the hash
        record["hash"] = record_hash(record)
        if self.signer is not None:
            record["sig"] = self.signer.sign(record["hash"])
        line = json.dumps(record, ensure_ascii=False, default=str)
        try:
            self._file.write(line + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise AuditError(f"cannot write journal {self.path}: {exc}") from exc
        self.head = record["hash"]
        self.seq += 1
        return record

    def close(self) -> None:
        self._file.close()


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a journal: where (1-based line, 0 for the file) and what."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


def _signature(n: int, rec: dict[str, Any], key: str | None, trusted: str | None) -> list[Problem]:
    sig = rec.get("sig")
    if not isinstance(sig, str):
        return [Problem(n, "not signed (forged, or written before journals were signed)")]
    if key is None:
        return [Problem(n, "the journal names no signing key in its first record")]
    if trusted is None:
        return [Problem(n, "there is no journal key here to check its signature against")]
    if key != trusted:
        return [
            Problem(
                n,
                f"signed with key {fingerprint(key)}, not this user's key {fingerprint(trusted)} (written elsewhere, or forged)",
            )
        ]
    if not signed_by(key, str(rec["hash"]), sig):
        return [Problem(n, f"its signature does not match (record {rec['seq']} was forged)")]
    return []


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a journal, for display. Lines that are not records are skipped."""
    out = []
    for line in _lines(path):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise AuditError(f"journal {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditError(f"journal {path} cannot be read: {exc}") from exc


def verify(
    path: Path,
    expected_records: int | None = None,
    expected_head: str | None = None,
    *,
    public_key: str | None = None,
) -> list[Problem]:
    """Every problem in the chain of ``path``; empty when it is intact.

    ``expected_records`` and ``expected_head`` come from the run index and catch
    a journal whose last records were cut off. Every record must be signed
    with ``public_key`` (default: this user's journal key), which catches a
    journal rewritten end to end with recomputed hashes, index and all.
    """
    trusted = public_key or user_public_key()
    try:
        lines = _lines(path)
    except AuditError as exc:
        return [Problem(0, str(exc))]
    problems: list[Problem] = []
    prev = GENESIS
    signer: object = None
    for n, line in enumerate(lines, 1):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            problems.append(Problem(n, "not a JSON record"))
            prev = ""
            continue
        if (
            not isinstance(rec, dict)
            or not {"seq", "prev", "hash", "type", "data", "ts"} <= rec.keys()
        ):
            problems.append(Problem(n, "not a journal record (fields missing)"))
            prev = ""
            continue
        if rec["seq"] != n - 1:
            problems.append(
                Problem(
                    n,
                    f"sequence number {rec['seq']} where {n - 1} was expected (record removed or reordered)",
                )
            )
        if rec["prev"] != prev and prev:
            problems.append(
                Problem(
                    n,
                    "does not chain to the record before it (record removed, inserted or reordered)",
                )
            )
        if record_hash(rec) != rec["hash"]:
            problems.append(
                Problem(n, f"content does not match its hash (record {rec['seq']} was edited)")
            )
        if n == 1:
            signer = rec.get("key")
        problems += _signature(n, rec, signer if isinstance(signer, str) else None, trusted)
        prev = rec["hash"]
    if expected_records is not None and expected_records != len(lines):
        problems.append(
            Problem(
                0,
                f"the index records {expected_records} records but the journal has {len(lines)} (records removed at the end)"
                if expected_records > len(lines)
                else f"the index records {expected_records} records but the journal has {len(lines)} (records appended outside LuminaGuard)",
            )
        )
    elif expected_head is not None and lines and prev != expected_head:
        problems.append(
            Problem(
                0,
                "the last record is not the one the index recorded (journal replaced or rewritten)",
            )
        )
    return problems
