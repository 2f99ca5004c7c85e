"""Run folders and result files shared by the scripts."""

from __future__ import annotations

import csv
import json
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def run_dir(root: str | Path, env: str, exp: str, seed: int) -> Path:
    """A fresh ``root/{env}__{exp}__{seed}__{unix time}`` folder (cleanrl's layout)."""
    path = Path(root) / f"{env}__{exp}__{seed}__{int(time.time())}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically (a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, sort_keys=False, default=float)
        f.write("\n")
    os.replace(tmp, path)


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write a list of same-keyed dicts as CSV with a header row."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
