"""A trainee that implements only the ``Trainee`` protocol, its losses read from a script."""

from __future__ import annotations

import math

import numpy as np

from trainees.base import N_GRAD_BUCKETS, StepStats


class ScriptedTrainee:
    """A plain class (not a ``TorchTrainee``) whose losses are given in advance.

    Args:
        train_losses: the minibatch loss of optimizer step ``t`` (1-based) at index ``t - 1``;
            its length is the budget. A non-finite entry is a diverged step (``finite=False``).
        val_losses: the validation loss after step ``t`` at index ``t - 1`` (read only at the
            steps the env evaluates); None: always ``loss0``.
        loss0: the validation loss of the "freshly initialised model" (``evaluate`` at step 0).
        base_lr: the reference learning rate.

    The scripts may be replaced between episodes (``total_steps`` is their length). Step
    ``t`` reports gradient norms ``t * (1, 2, ..., N_GRAD_BUCKETS)``, so each normalised
    gradient feature is ``log(t)``. ``lrs`` and ``seeds`` record every call.
    """

    def __init__(
        self,
        train_losses,
        val_losses=None,
        *,
        loss0: float = 2.0,
        base_lr: float = 0.01,
    ) -> None:
        self.train_losses = np.asarray(train_losses, dtype=float)
        self.val_losses = None if val_losses is None else np.asarray(val_losses, dtype=float)
        self.loss0 = loss0
        self._base_lr = base_lr
        self._steps_done = 0
        self.lrs: list[float] = []
        self.seeds: list[int] = []

    @property
    def steps_done(self) -> int:
        return self._steps_done

    @property
    def total_steps(self) -> int:
        return len(self.train_losses)

    @property
    def base_lr(self) -> float:
        return self._base_lr

    def reset(self, seed: int) -> None:
        self.seeds.append(seed)
        self._steps_done = 0

    def train_step(self, lr: float) -> StepStats:
        if self._steps_done >= self.total_steps:
            raise RuntimeError("the budget is spent")
        loss = float(self.train_losses[self._steps_done])
        self._steps_done += 1
        self.lrs.append(lr)
        finite = math.isfinite(loss)
        scale = self._steps_done if finite else math.inf
        grads = scale * np.arange(1.0, N_GRAD_BUCKETS + 1.0)
        return StepStats(loss, float(np.linalg.norm(grads)), grads, finite)

    def evaluate(self) -> float:
        if self._steps_done == 0 or self.val_losses is None:
            return self.loss0
        return float(self.val_losses[self._steps_done - 1])
