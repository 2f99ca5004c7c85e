"""Hand-designed learning-rate schedules as pure functions of training progress.

Each schedule is a small frozen dataclass whose ``__call__(progress)`` returns the
LR multiplier of ``base_lr`` at ``progress`` in [0, 1] (fraction of the budget spent).
Being data, a schedule pickles, prints its parameters, and is saved with the
demonstrations it produced.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Protocol


class Schedule(Protocol):
    """``multiplier = schedule(progress)``, progress in [0, 1]."""

    name: str

    def __call__(self, progress: float) -> float:
        """LR multiplier of ``base_lr`` at ``progress``."""
        ...


def _check_unit(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}={value!r} is invalid; expected a fraction in [0, 1]")


def _check_positive(name: str, value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name}={value!r} is invalid; expected a finite value > 0")


def _warmup(progress: float, warmup: float, start: float, peak: float) -> float | None:
    """Linear ramp ``start -> peak`` over ``[0, warmup]``; None past the warm-up."""
    if progress < warmup:
        return start + (peak - start) * progress / warmup
    return None


def _after_warmup(progress: float, warmup: float) -> float:
    """Fraction of the post-warm-up phase that ``progress`` has covered, in [0, 1]."""
    return (progress - warmup) / (1.0 - warmup) if warmup < 1 else 1.0


def _clamp(progress: float) -> float:
    return min(max(float(progress), 0.0), 1.0)


@dataclass(frozen=True)
class Constant:
    """``mult`` throughout."""

    mult: float = 1.0
    name: ClassVar[str] = "constant"

    def __post_init__(self) -> None:
        _check_positive("mult", self.mult)

    def __call__(self, progress: float) -> float:
        return self.mult


@dataclass(frozen=True)
class LinearWarmupDecay:
    """Linear warm-up ``start -> peak`` over ``warmup``, then linear decay to ``end``."""

    warmup: float = 0.1
    peak: float = 1.0
    start: float = 0.01
    end: float = 0.01
    name: ClassVar[str] = "linear_warmup"

    def __post_init__(self) -> None:
        _check_unit("warmup", self.warmup)
        for n in ("peak", "start", "end"):
            _check_positive(n, getattr(self, n))

    def __call__(self, progress: float) -> float:
        p = _clamp(progress)
        if (w := _warmup(p, self.warmup, self.start, self.peak)) is not None:
            return w
        return self.peak + (self.end - self.peak) * _after_warmup(p, self.warmup)


@dataclass(frozen=True)
class Cosine:
    """Cosine annealing ``peak -> floor`` (Loshchilov & Hutter), after an optional warm-up."""

    warmup: float = 0.0
    peak: float = 1.0
    floor: float = 0.1  # nanoGPT decays to lr / 10
    start: float = 0.01
    name: ClassVar[str] = "cosine"

    def __post_init__(self) -> None:
        _check_unit("warmup", self.warmup)
        for n in ("peak", "floor", "start"):
            _check_positive(n, getattr(self, n))

    def __call__(self, progress: float) -> float:
        p = _clamp(progress)
        if (w := _warmup(p, self.warmup, self.start, self.peak)) is not None:
            return w
        cos = math.cos(math.pi * _after_warmup(p, self.warmup))
        return self.floor + 0.5 * (self.peak - self.floor) * (1.0 + cos)


@dataclass(frozen=True)
class Polynomial:
    """Polynomial decay ``end + (peak - end) * (1 - p) ** power``."""

    power: float = 2.0
    peak: float = 1.0
    end: float = 0.01
    name: ClassVar[str] = "polynomial"

    def __post_init__(self) -> None:
        for n in ("power", "peak", "end"):
            _check_positive(n, getattr(self, n))

    def __call__(self, progress: float) -> float:
        return self.end + (self.peak - self.end) * (1.0 - _clamp(progress)) ** self.power


@dataclass(frozen=True)
class WarmupStableDecay:
    """Warm-up, a long stable phase at ``peak``, then a linear decay to ``end`` over ``decay``."""

    warmup: float = 0.05
    decay: float = 0.2
    peak: float = 1.0
    start: float = 0.01
    end: float = 0.01
    name: ClassVar[str] = "wsd"

    def __post_init__(self) -> None:
        _check_unit("warmup", self.warmup)
        _check_unit("decay", self.decay)
        if self.warmup + self.decay > 1:
            raise ValueError(
                f"warmup={self.warmup} + decay={self.decay} is invalid; expected a sum <= 1"
            )
        for n in ("peak", "start", "end"):
            _check_positive(n, getattr(self, n))

    def __call__(self, progress: float) -> float:
        p = _clamp(progress)
        if (w := _warmup(p, self.warmup, self.start, self.peak)) is not None:
            return w
        decay_start = 1.0 - self.decay
        if p < decay_start or self.decay == 0:
            return self.peak
        return self.peak + (self.end - self.peak) * (p - decay_start) / self.decay


SCHEDULES: dict[str, type] = {
    "constant": Constant,
    "linear_warmup": LinearWarmupDecay,
    "cosine": Cosine,
    "polynomial": Polynomial,
    "wsd": WarmupStableDecay,
}


def make_schedule(name: str, **params: float) -> Schedule:
    """The schedule ``name`` with ``params``; a ValueError names the valid names."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; valid: {', '.join(SCHEDULES)}")
    return SCHEDULES[name](**params)
