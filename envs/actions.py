"""Action mappings: from an agent's action to the learning rate of the next optimizer steps."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from gymnasium import spaces


class ContinuousLogMultiplier:
    """One float ``a``: ``lr = base_lr * exp(a)``, with ``a`` clipped to ``[log(lo), log(hi)]``.

    Scale-free across trainees: ``a = 0`` is the trainee's reference LR.
    """

    def __init__(self, min_mult: float, max_mult: float) -> None:
        self.low, self.high = math.log(min_mult), math.log(max_mult)
        self.space = spaces.Box(self.low, self.high, shape=(1,), dtype=np.float32)

    def initial_multiplier(self) -> float:
        """LR multiplier before the first action (unused: every step sets its own)."""
        return 1.0

    def multiplier(self, action: object, current: float) -> float:
        """The LR multiplier an action sets; ``current`` is ignored."""
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.size != 1:
            raise ValueError(f"action must hold one float (a log LR multiplier), got {action!r}")
        if np.isnan(a[0]):
            raise ValueError("action is NaN; expected a log LR multiplier")
        return math.exp(float(np.clip(a[0], self.low, self.high)))


class DiscreteFactors:
    """Action ``i`` multiplies the current LR by ``factors[i]``, clipped to ``[lo, hi] * base``."""

    def __init__(
        self, factors: Sequence[float], min_mult: float, max_mult: float, initial_mult: float
    ) -> None:
        self.factors = tuple(float(f) for f in factors)
        self.min_mult, self.max_mult = min_mult, max_mult
        self.initial_mult = initial_mult
        self.space = spaces.Discrete(len(self.factors))

    def initial_multiplier(self) -> float:
        """LR multiplier at the start of an episode."""
        return self.initial_mult

    def multiplier(self, action: object, current: float) -> float:
        """``current * factors[action]``, clipped to the bounds."""
        a = np.asarray(action).reshape(-1)
        if a.size != 1 or not float(a[0]).is_integer():
            raise ValueError(f"action must be one integer index, got {action!r}")
        i = int(a[0])
        if not 0 <= i < len(self.factors):
            raise ValueError(
                f"action {i} is out of range; valid: 0..{len(self.factors) - 1} "
                f"(factors {self.factors})"
            )
        return float(np.clip(current * self.factors[i], self.min_mult, self.max_mult))
