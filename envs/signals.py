"""The training signals of one run, and the observation window built from them.

One component, fed one optimizer step at a time, is shared by ``LRScheduleEnv`` and
``agents.scheduler.LearnedLRScheduler``: whatever loop trains the model, a policy sees
exactly the observation the env would show it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from envs.observation import BUILDERS, OBSERVATIONS
from trainees.base import N_GRAD_BUCKETS
from trainees.gradnorm import MOMENTS, NO_UPDATE


@dataclass(frozen=True)
class Rows:
    """The optimizer steps recorded since the last flush, as raw (unnormalised) signals.

    Attributes:
        steps: optimizer step of each row (1-based), ``(k,)``.
        train_loss: minibatch loss of each step, ``(k,)``.
        val_loss: validation loss in force after each step (the last evaluation), ``(k,)``.
        evals: every validation loss evaluated during these steps, in order.
    """

    steps: np.ndarray
    train_loss: np.ndarray
    val_loss: np.ndarray
    evals: np.ndarray


class TrainingSignals:
    """Records a run's raw signals and keeps the observation window of the last steps.

    Call :meth:`start` with the fresh model's validation loss, then per optimizer step
    :meth:`record_step` (minibatch loss, gradient norms before clipping pooled in depth
    buckets, LR multiplier; for observation ``v1`` the update moments) and, after an evaluation made at that step,
    :meth:`record_eval`. :meth:`flush` appends the recorded steps to the window (one
    vectorised append, as the env does once per action); :meth:`observation` returns it.

    Attributes:
        loss0: validation loss of the freshly initialised model.
        val_loss: the latest validation loss.
        best_val: the best finite validation loss so far (``loss0`` at the start).
        last_eval_step: the optimizer step of the latest evaluation (0: ``loss0``).
        steps_done: optimizer steps recorded.
    """

    def __init__(
        self, *, window: int, total_steps: int, eval_every: int, observation: str = "v0"
    ) -> None:
        if total_steps < 1 or eval_every < 1:
            raise ValueError(
                f"total_steps={total_steps!r} and eval_every={eval_every!r} must be >= 1"
            )
        if observation not in OBSERVATIONS:
            raise ValueError(
                f"observation={observation!r} is invalid; valid: {', '.join(OBSERVATIONS)}"
            )
        self.observation_version = observation
        self.builder = BUILDERS[observation](window)
        self.total_steps, self.eval_every = total_steps, eval_every
        self.loss0 = self.val_loss = self.best_val = 1.0
        self.last_eval_step = self.steps_done = 0
        self._measured = NO_UPDATE
        self._clear()

    def _clear(self) -> None:
        self._loss: list[float] = []
        self._grads: list[np.ndarray] = []
        self._moments: list[np.ndarray] = []
        self._lr: list[float] = []
        self._val: list[float] = []
        self._eval_at: list[int] = []
        self._evals: list[float] = []

    def start(self, loss0: float, lr_mult: float) -> np.ndarray:
        """Begin a run; returns the first observation (one row: step 0).

        Raises:
            ValueError: ``loss0`` is not finite and > 0 (every loss is divided by it).
        """
        if not (math.isfinite(loss0) and loss0 > 0):
            raise ValueError(
                f"the freshly initialised model's validation loss is {loss0!r}; losses are "
                "normalised by it, so it must be finite and > 0"
            )
        self.loss0 = self.val_loss = self.best_val = float(loss0)
        self.last_eval_step = self.steps_done = 0
        self._measured = NO_UPDATE  # the latest update moments (v1), carried forward
        self._clear()
        return self.builder.reset(self.loss0, lr_mult)

    def record_step(
        self,
        loss: float,
        grad_norms: np.ndarray,
        lr_mult: float,
        moments: np.ndarray | None = None,
    ) -> None:
        """One optimizer step: its minibatch loss, pooled pre-clip gradient norms, LR
        multiplier, and (observation ``v1``) its update moments.

        ``moments`` None (a step not measured) repeats the latest measurement.
        """
        if self.observation_version == "v1":
            if moments is not None:
                self._measured = moments
            self._moments.append(self._measured)
        self.steps_done += 1
        self._loss.append(loss)
        self._grads.append(grad_norms)
        self._lr.append(lr_mult)
        self._val.append(self.val_loss)
        self._eval_at.append(self.last_eval_step)

    def record_eval(self, val_loss: float) -> None:
        """A validation loss evaluated after the latest recorded optimizer step."""
        self.val_loss = float(val_loss)
        self.last_eval_step = self.steps_done
        self._evals.append(self.val_loss)
        if math.isfinite(self.val_loss):
            self.best_val = min(self.best_val, self.val_loss)
        if self._val:  # the step's row shows the evaluation made right after it
            self._val[-1], self._eval_at[-1] = self.val_loss, self.steps_done

    def flush(self) -> Rows:
        """Append the recorded steps to the window; returns them as raw signals."""
        k = len(self._loss)
        steps = np.arange(self.steps_done - k + 1, self.steps_done + 1)
        rows = Rows(steps, np.array(self._loss), np.array(self._val), np.array(self._evals))
        if k:
            at = np.array(self._eval_at)
            common = dict(
                remaining=(self.total_steps - steps) / self.total_steps,
                train_loss=rows.train_loss,
                val_loss=rows.val_loss,
                staleness=np.minimum((steps - at) / self.eval_every, 1.0),
                lr_mult=np.array(self._lr),
            )
            if self.observation_version == "v1":
                self.builder.append(**common, moments=np.array(self._moments))
            else:
                grads = np.array(self._grads).reshape(k, N_GRAD_BUCKETS)
                self.builder.append(**common, grad_norms=grads)
        self._clear()
        return rows

    def observation(self) -> np.ndarray:
        """A copy of the window (steps not yet flushed are not in it)."""
        return self.builder.current()

    def state_dict(self) -> dict[str, Any]:
        """The whole state as plain Python values (exact, ``torch.load(weights_only=True)``-safe)."""
        return {
            "scalars": [self.loss0, self.val_loss, self.best_val],
            "counters": [self.last_eval_step, self.steps_done],
            "pending": [list(x) for x in (self._loss, self._lr, self._val, self._eval_at)],
            "pending_grads": np.array(self._grads).reshape(-1, N_GRAD_BUCKETS).tolist(),
            "pending_evals": list(self._evals),
            "pending_moments": np.array(self._moments)
            .reshape(-1, len(MOMENTS), N_GRAD_BUCKETS + 1)
            .tolist(),
            "measured": self._measured.tolist(),
            "builder": self.builder.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state written by :meth:`state_dict`."""
        self.loss0, self.val_loss, self.best_val = (float(x) for x in state["scalars"])
        self.last_eval_step, self.steps_done = (int(x) for x in state["counters"])
        loss, lr, val, at = state["pending"]
        self._loss, self._lr, self._val = list(loss), list(lr), list(val)
        self._eval_at = [int(a) for a in at]
        self._grads = list(np.asarray(state["pending_grads"], dtype=np.float64))
        self._evals = list(state["pending_evals"])
        self._moments = list(np.asarray(state.get("pending_moments", []), dtype=np.float64))
        self._measured = np.asarray(state.get("measured", NO_UPDATE), dtype=np.float64)
        self.builder.load_state_dict(state["builder"])
