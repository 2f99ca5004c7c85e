"""The LR range test (Smith 2017; fastai's ``lr_find``): a way to pick an LR without a sweep.

The test trains from the run's initial weights for ``steps`` optimizer steps with the LR
growing geometrically from ``lr_min`` to ``lr_max``, smooths the minibatch losses with
an exponential moving average (``smoothing``, bias-corrected, as fastai and
torch-lr-finder do), and stops early once the smoothed loss exceeds ``divergence`` times
its minimum or turns non-finite.

**The rule that picks the LR**: the LR at the minimum of the smoothed loss, divided by
``divide`` (10: fastai's classic "minimum / 10"). LRs beyond the minimum already make
the loss rise; a tenth of it is still in the falling part.

A method ``range_test_cosine`` (``evaluation.methods``) charges the test to its run: the
test takes ``range_test_steps(T)`` of the run's ``T`` optimizer steps (all of them,
even when it stops early), then the trainee restarts from its initial weights and data
order and trains ``T - steps`` steps with cosine at the picked LR.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from trainees.base import Trainee


@dataclass(frozen=True)
class RangeTest:
    """Settings of an LR range test (see the module docstring for the rule).

    Attributes:
        steps: optimizer steps of the test (charged to the run's budget).
        lr_min, lr_max: the first and the last LR of the geometric ramp.
        smoothing: the moving average's weight on the past (fastai's 0.98).
        divergence: stop once the smoothed loss is this many times its minimum.
        divide: the picked LR is the LR at the smoothed loss's minimum over this.
    """

    steps: int
    lr_min: float = 1e-7
    lr_max: float = 10.0
    smoothing: float = 0.98
    divergence: float = 4.0
    divide: float = 10.0

    def __post_init__(self) -> None:
        if self.steps < 2:
            raise ValueError(f"steps={self.steps} is invalid; expected an integer >= 2")
        if not (0 < self.lr_min < self.lr_max and math.isfinite(self.lr_max)):
            raise ValueError(
                f"lr_min={self.lr_min}, lr_max={self.lr_max} are invalid; expected "
                "0 < lr_min < lr_max, finite"
            )
        if not 0 <= self.smoothing < 1:
            raise ValueError(f"smoothing={self.smoothing} is invalid; expected [0, 1)")
        if self.divergence <= 1 or self.divide < 1:
            raise ValueError(
                f"divergence={self.divergence}, divide={self.divide} are invalid; "
                "expected divergence > 1 and divide >= 1"
            )

    def lrs(self) -> np.ndarray:
        """The ramp: ``steps`` LRs from ``lr_min`` to ``lr_max``, geometrically spaced."""
        return np.geomspace(self.lr_min, self.lr_max, self.steps)


def range_test_steps(total_steps: int, fraction: float = 0.05, minimum: int = 16) -> int:
    """Steps a run of ``total_steps`` gives its range test: ``fraction`` of the budget,
    at least ``minimum``, at most half of it (100 of MLP-MNIST's 2,000; 16 of 256)."""
    return int(min(max(minimum, round(fraction * total_steps)), total_steps // 2))


def smoothed_losses(losses: np.ndarray, smoothing: float) -> np.ndarray:
    """Bias-corrected exponential moving average of ``losses`` (fastai's)."""
    out, avg = np.empty(len(losses)), 0.0
    for i, loss in enumerate(losses):
        avg = smoothing * avg + (1 - smoothing) * float(loss)
        out[i] = avg / (1 - smoothing ** (i + 1))
    return out


def pick_lr(lrs: np.ndarray, smoothed: np.ndarray, divide: float) -> float:
    """The rule: the LR at the smoothed loss's minimum (over its finite values), / ``divide``."""
    finite = np.isfinite(smoothed)
    if not finite.any():
        raise ValueError("the range test has no finite loss to pick an LR from")
    i = int(np.argmin(np.where(finite, smoothed, np.inf)))
    return float(lrs[i] / divide)


def run_range_test(trainee: Trainee, test: RangeTest) -> dict[str, Any]:
    """Run ``test`` on a freshly reset ``trainee`` (from its current weights).

    Returns ``lr`` (the pick), ``steps`` (charged), ``steps_run`` (until the stop),
    ``lrs``, ``losses`` and ``smoothed`` (of the steps run).
    """
    lrs, losses, best, avg = test.lrs(), [], math.inf, 0.0
    for lr in lrs:
        stats = trainee.train_step(float(lr))
        losses.append(stats.loss if stats.finite else math.nan)
        # smoothed_losses' last value, kept running instead of recomputed over the list
        avg = test.smoothing * avg + (1 - test.smoothing) * losses[-1]
        smooth = avg / (1 - test.smoothing ** len(losses))
        if not math.isfinite(smooth) or smooth > test.divergence * best:
            break
        best = min(best, smooth)
    smoothed = smoothed_losses(np.array(losses), test.smoothing)
    run = lrs[: len(losses)]
    return {
        "lr": pick_lr(run, smoothed, test.divide),
        "steps": test.steps,
        "steps_run": len(losses),
        "lrs": run.tolist(),
        "losses": [float(x) if math.isfinite(x) else None for x in losses],
        "smoothed": [float(x) if math.isfinite(x) else None for x in smoothed],
    }
