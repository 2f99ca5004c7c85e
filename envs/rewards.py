"""Reward presets. Each is a small function of the signals of one env step.

All losses are normalised by ``loss0``, the validation loss of the freshly
initialised model, so rewards are comparable across trainees. Only validation
data enters a reward; the test split never does.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

RewardName = Literal["stability", "neg_val_loss", "val_improvement", "best_minus_val"]
REWARDS: tuple[str, ...] = get_args(RewardName)


@dataclass(frozen=True)
class RewardInputs:
    """What one env step did, normalised by ``loss0``.

    Attributes:
        train: minibatch losses of this step's optimizer steps, ``(k,)``.
        prev_train: the last minibatch loss before them (the first one's predecessor).
        val: validation loss in force after each of those steps (last evaluation), ``(k,)``.
        best_before: best validation loss before this env step.
        best_after: best validation loss after it.
        evaluated: whether a validation evaluation happened during this env step.
        remaining: fraction of the budget left after this env step.
    """

    train: np.ndarray
    prev_train: float
    val: np.ndarray
    best_before: float
    best_after: float
    evaluated: bool
    remaining: float


def stability(
    r: RewardInputs, *, increase: float = 1.0, train: float = 0.5, val: float = 0.5
) -> float:
    """``-mean_t[increase * max(0, train_t - train_{t-1}) + train * train_t + val * val_t]``.

    Penalises loss spikes (the sign of too high an LR) as well as high losses.
    """
    rises = np.diff(r.train, prepend=r.prev_train).clip(min=0.0).sum()
    return -float(increase * rises + train * r.train.sum() + val * r.val.sum()) / len(r.train)


def neg_val_loss(r: RewardInputs) -> float:
    """``-val``: the latest validation loss, negated."""
    return -float(r.val[-1])


def val_improvement(r: RewardInputs) -> float:
    """``max(0, best_before - val)`` when an evaluation improved on the best so far, else 0."""
    return max(0.0, r.best_before - float(r.val[-1])) if r.evaluated else 0.0


def best_minus_val(r: RewardInputs, *, gamma: float = 1.0, time: float = 0.1) -> float:
    """``gamma * (best - val) + time * remaining``: stay near the best, with a time term."""
    return gamma * (r.best_after - float(r.val[-1])) + time * r.remaining


PRESETS: dict[str, Callable[..., float]] = {
    "stability": stability,
    "neg_val_loss": neg_val_loss,
    "val_improvement": val_improvement,
    "best_minus_val": best_minus_val,
}


def make_reward(
    name: str, params: dict[str, float] | None = None
) -> Callable[[RewardInputs], float]:
    """The preset ``name`` with its keyword ``params`` bound.

    Raises:
        ValueError: an unknown preset or parameter, naming the valid ones.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown reward {name!r}; valid: {', '.join(REWARDS)}")
    fn = PRESETS[name]
    valid = [p for p in inspect.signature(fn).parameters if p != "r"]
    unknown = sorted(set(params or {}) - set(valid))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for reward {name!r}; valid: {valid}")
    return functools.partial(fn, **(params or {}))  # a partial pickles; a lambda does not
