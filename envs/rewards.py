"""Reward presets. Each is a small function of the signals of one env step.

All losses are normalised by ``loss0``, the validation loss of the freshly
initialised model, so rewards are comparable across trainees, and clipped to
``[0, loss_cap]`` (default 4: a run four times worse than the untrained model is as bad
as it gets). Losses are non-negative (cross-entropy, mean squared error). Only
validation data enters a reward; the test split never does.

Every preset is scaled so that an episode's return is an average over the run's
optimizer steps (or, for ``val_improvement``, a telescoping sum): whatever
``steps_per_action`` and ``total_steps`` are, the return of any finished run lies in
a known interval (:func:`return_bounds`). The reward of a step in which training
diverged (:func:`divergence_reward`) is set below the lowest return of a finished run
minus the most any episode could have earned before, so that **diverging never pays**.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

RewardName = Literal["stability", "neg_val_loss", "val_improvement", "best_minus_val"]
REWARDS: tuple[str, ...] = get_args(RewardName)
LOSS_CAP = 4.0  # normalised losses enter rewards clipped to [0, LOSS_CAP]


@dataclass(frozen=True)
class RewardInputs:
    """What one env step did, losses normalised by ``loss0`` and clipped to ``[0, loss_cap]``.

    Attributes:
        train: minibatch losses of this step's ``k`` optimizer steps, ``(k,)``.
        prev_train: the minibatch loss before them (1.0, i.e. ``loss0``, before the first).
        val: validation loss in force after each of those steps (last evaluation), ``(k,)``.
        evals: every validation loss evaluated during this env step, in order (may be empty).
        best_before: best validation loss before this env step (1.0 at the start).
        remaining: fraction of the budget left after this env step.
        total_steps: the run's budget ``T`` of optimizer steps.
    """

    train: np.ndarray
    prev_train: float
    val: np.ndarray
    evals: np.ndarray
    best_before: float
    remaining: float
    total_steps: int

    @property
    def share(self) -> float:
        """This env step's share of the budget, ``k / T``."""
        return len(self.train) / self.total_steps


@dataclass(frozen=True)
class ReturnBounds:
    """Bounds on an episode's return under a preset.

    Attributes:
        low: the lowest return of any *finished* episode (normalised losses in [0, loss_cap]).
        high: the highest return any prefix of any episode can have.
        low_within_loss0: the lowest return of a finished episode whose normalised losses
            stay in [0, 1], i.e. at or below the untrained model's.
    """

    low: float
    high: float
    low_within_loss0: float


def stability(
    r: RewardInputs, *, increase: float = 1.0, train: float = 0.5, val: float = 0.5
) -> float:
    """``-(1/T) sum_t [increase * max(0, train_t - train_{t-1}) + train * train_t + val * val_t]``.

    The sum runs over the env step's optimizer steps ``t``; ``T`` is the run's budget.
    Penalises loss spikes (the sign of too high an LR) as well as high losses. The
    normaliser is the budget ``T``, not the step's own ``k``: the return is then the
    run's mean per-step cost, in ``[-(increase + train + val), 0]`` for losses at or
    below ``loss0``, whatever the budget and ``steps_per_action``.
    """
    rises = np.diff(r.train, prepend=r.prev_train).clip(min=0.0).sum()
    return -float(increase * rises + train * r.train.sum() + val * r.val.sum()) / r.total_steps


def neg_val_loss(r: RewardInputs) -> float:
    """``-(1/T) sum_t val_t``: minus the validation loss in force, averaged over the budget.

    The return is minus the area under the validation curve (per optimizer step).
    """
    return -float(r.val.sum()) / r.total_steps


def val_improvement(r: RewardInputs) -> float:
    """``max(0, best_before - min(evals))``: improvement on the best, over every evaluation.

    0 when the step made no evaluation. The return telescopes to ``1 - best``.
    """
    if len(r.evals) == 0:
        return 0.0
    return max(0.0, r.best_before - float(np.min(r.evals)))


def best_minus_val(r: RewardInputs, *, gamma: float = 1.0, time: float = 0.1) -> float:
    """``(k/T) * [gamma * (best_before - val) + time * remaining]``.

    ``val`` is the validation loss in force at the end of the step and ``best_before``
    the best one before the step, so a run that never improves earns ``<= 0`` from the
    first term; the time term rewards finishing.
    """
    return r.share * (gamma * (r.best_before - float(r.val[-1])) + time * r.remaining)


PRESETS: dict[str, Callable[..., float]] = {
    "stability": stability,
    "neg_val_loss": neg_val_loss,
    "val_improvement": val_improvement,
    "best_minus_val": best_minus_val,
}


def return_bounds(
    name: str, params: dict[str, float] | None = None, *, loss_cap: float = LOSS_CAP
) -> ReturnBounds:
    """The :class:`ReturnBounds` of preset ``name`` with weights ``params``.

    With normalised losses in ``[0, c]`` (``c = loss_cap``, or 1 for ``low_within_loss0``):

    - ``stability``: each optimizer step costs between 0 and ``(increase + train + val) c``
      (a rise is at most ``c``; the first is measured from ``loss0``, i.e. 1).
    - ``neg_val_loss``: the mean validation loss is in ``[0, c]``.
    - ``val_improvement``: the sum telescopes to ``1 - best`` in [0, 1].
    - ``best_minus_val``: ``best_before - val`` is in ``[-c, 1]`` and the time term in
      ``[0, time]``, weighted by shares summing to 1.

    Raises:
        ValueError: an unknown preset or parameter, or a bad weight or cap.
    """
    make_reward(name, params)  # validates
    if not (math.isfinite(loss_cap) and loss_cap >= 1):
        raise ValueError(f"loss_cap={loss_cap!r} is invalid; expected a finite value >= 1")
    p = {**_defaults(name), **(params or {})}

    if name == "stability":
        worst, high = -(p["increase"] + p["train"] + p["val"]), 0.0  # per unit of loss
    elif name == "neg_val_loss":
        worst, high = -1.0, 0.0
    elif name == "val_improvement":
        worst, high = 0.0, 1.0
    else:
        worst, high = -p["gamma"], p["gamma"] + p["time"]
    return ReturnBounds(low=worst * loss_cap, high=high, low_within_loss0=worst)


def divergence_reward(
    name: str,
    params: dict[str, float] | None,
    *,
    remaining: float,
    margin: float,
    loss_cap: float = LOSS_CAP,
) -> float:
    """The reward of the step in which training diverged: ``low - high - margin * (1 + remaining)``.

    An episode that diverges earned at most ``high`` before, so its return is at most
    ``low - margin * (1 + remaining) < low``: below that of every finished episode.
    ``remaining`` (the budget fraction left) makes an earlier divergence cost more.
    """
    b = return_bounds(name, params, loss_cap=loss_cap)
    return b.low - b.high - margin * (1.0 + remaining)


def _defaults(name: str) -> dict[str, float]:
    params = inspect.signature(PRESETS[name]).parameters.values()
    return {p.name: p.default for p in params if p.name != "r"}


def make_reward(
    name: str, params: dict[str, float] | None = None
) -> Callable[[RewardInputs], float]:
    """The preset ``name`` with its keyword ``params`` bound.

    Raises:
        ValueError: an unknown preset or parameter, or a weight that is negative or not
            finite, naming the valid ones.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown reward {name!r}; valid: {', '.join(REWARDS)}")
    valid = list(_defaults(name))
    unknown = sorted(set(params or {}) - set(valid))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for reward {name!r}; valid: {valid}")
    for key, value in (params or {}).items():
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            raise ValueError(
                f"reward_params[{key!r}]={value!r} is invalid; expected a finite weight >= 0"
            )
    return functools.partial(PRESETS[name], **(params or {}))  # a partial pickles
