"""TensorBoard helpers shared by the scripts."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from torch.utils.tensorboard import SummaryWriter


def log_hyperparameters(writer: SummaryWriter, args: Any) -> None:
    """Write a script's arguments (its ``Args`` dataclass, or that as a dict) to TensorBoard
    as a markdown table (as cleanrl does)."""
    items = args.items() if isinstance(args, Mapping) else dataclasses.asdict(args).items()
    rows = "\n".join(f"|{k}|{v}|" for k, v in items)
    writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + rows)
