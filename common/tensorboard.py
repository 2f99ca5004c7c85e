"""TensorBoard helpers shared by the scripts."""

from __future__ import annotations

import dataclasses
from typing import Any

from torch.utils.tensorboard import SummaryWriter


def log_hyperparameters(writer: SummaryWriter, args: Any) -> None:
    """Write a script's ``Args`` dataclass to TensorBoard as a markdown table (as cleanrl does)."""
    rows = "\n".join(f"|{k}|{v}|" for k, v in dataclasses.asdict(args).items())
    writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + rows)
