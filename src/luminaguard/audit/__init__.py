"""The audit log: hash-chained JSONL journals, one per run, and a SQLite index of runs."""
