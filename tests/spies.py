"""Test helpers: what an env does to its trainee, and a policy that reads the signals."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from envs.actions import ContinuousLogMultiplier
from envs.observation import FEATURES, FEATURES_V1

_COLUMNS = {name: FEATURES.index(name) for name in ("log_train_loss", "log_val_loss")}
_GRADS = [i for i, name in enumerate(FEATURES) if name.startswith("log_grad_norm_")]
_V1 = {name: FEATURES_V1.index(name) for name in FEATURES_V1}


def spy_lrs(env: gym.Env) -> list[list[float]]:
    """Record the LR of every optimizer param group at every optimizer step of ``env``.

    ``del env.unwrapped.trainee.train_step`` removes the spy.
    """
    trainee = env.unwrapped.trainee
    seen: list[list[float]] = []
    step = trainee.train_step

    def spying(lr):
        stats = step(lr)
        seen.append([g["lr"] for g in trainee.optimizer.param_groups])
        return stats

    trainee.train_step = spying
    return seen


class SignalPolicy:
    """The log LR multiplier from the newest train loss, val loss and gradient norms:
    ``bias + train * log_train_loss + val * log_val_loss - 0.5 * mean(log_grad_norms)``.

    On a v1 observation (17 features) it reads every kind of dimensionless signal:
    ``bias + train * train_loss_position + val * val_loss_position - update_cosine
    - 0.1 * (log_update_ratio + 5) - 0.1 * loss_slope_t`` (the pooled and bucket
    means of the update signals).

    Quantised to 1/8, so that a rounding difference in a signal does not change the LR
    but a wrong reading (a missing evaluation, a loss scaled wrongly) does.
    """

    action_space = ContinuousLogMultiplier(0.1, 10.0).space

    def __init__(self, bias: float, train: float, val: float) -> None:
        self.bias, self.train, self.val = bias, train, val

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        row = np.asarray(obs, dtype=np.float64)[-1]
        if len(row) == len(FEATURES_V1):
            return self._act(self._v1(row)), state
        raw = (
            self.bias
            + self.train * row[_COLUMNS["log_train_loss"]]
            + self.val * row[_COLUMNS["log_val_loss"]]
            - 0.5 * row[_GRADS].mean()
        )
        return self._act(raw), state

    def _v1(self, row: np.ndarray) -> float:
        ratio = [i for name, i in _V1.items() if name.startswith("log_update_ratio")]
        cosine = [i for name, i in _V1.items() if name.startswith("update_cosine")]
        return (
            self.bias
            + self.train * row[_V1["train_loss_position"]]
            + self.val * row[_V1["val_loss_position"]]
            - row[cosine].mean()
            - 0.1 * (row[ratio].mean() + 5)
            - 0.1 * row[_V1["loss_slope_t"]]
        )

    def _act(self, raw: float) -> np.ndarray:
        low, high = float(self.action_space.low[0]), float(self.action_space.high[0])
        return np.array([np.clip(np.round(raw * 8) / 8, low, high)], np.float32)
