"""Run folders and result files shared by the scripts."""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter

from trainees.data.resolve import atomic_write_bytes


def run_dir(root: str | Path, env: str, exp: str, seed: int) -> Path:
    """A fresh ``root/{env}__{exp}__{seed}__{unix time}`` folder (cleanrl's layout)."""
    path = Path(root) / f"{env}__{exp}__{seed}__{int(time.time())}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically (a reader never sees half a file)."""
    text = json.dumps(data, indent=2, sort_keys=False, default=float) + "\n"
    atomic_write_bytes(Path(path), text.encode())


def log_hyperparameters(writer: SummaryWriter, args: Any) -> None:
    """Write a script's ``Args`` dataclass to TensorBoard as a markdown table (as cleanrl does)."""
    rows = "\n".join(f"|{k}|{v}|" for k, v in dataclasses.asdict(args).items())
    writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + rows)


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write a list of same-keyed dicts as CSV with a header row."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
