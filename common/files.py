"""Writing files safely: atomic writes, run folders, JSON and CSV.

Every file this project writes (datasets prepared into the cache, policies, Q-tables,
demonstrations, results) goes through :func:`atomic_write_bytes`: it is written to a
temporary file beside its target and renamed over it, so a reader (or a job resumed
after a crash) sees either the old file or the whole new one, never half of it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see either nothing or all of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # the rename must not land before the data
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode())


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically (numpy scalars become floats)."""
    return atomic_write_text(path, json.dumps(data, indent=2, default=float) + "\n")


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write a list of same-keyed dicts as CSV with a header row, atomically.

    Raises:
        ValueError: for an empty list (a CSV needs at least its header's keys).
    """
    if not rows:
        raise ValueError(f"no rows to write to {path}")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(path, buf.getvalue())


def run_dir(root: str | Path, env: str, exp: str, seed: int) -> Path:
    """A fresh ``root/{env}__{exp}__{seed}__{unix time}`` folder (cleanrl's layout)."""
    path = Path(root) / f"{env}__{exp}__{seed}__{int(time.time())}"
    path.mkdir(parents=True, exist_ok=True)
    return path
