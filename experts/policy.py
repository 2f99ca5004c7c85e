"""Adapters that turn a schedule into a policy for LRScheduleEnv's action spaces.

The policy reads training progress from the observation (the remaining-budget
column of the newest row), so it needs no access to the env: it works with
imitation's rollout utilities (as a ``PolicyCallable``) and with SB3-style ``predict``.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from envs.observation import LOG_LR_COL as LOG_LR
from envs.observation import REMAINING_COL as REMAINING
from experts.schedules import Schedule


class SchedulePolicy:
    """Acts so that the env's LR follows ``schedule`` of training progress.

    - Continuous (Box) actions: the log of the schedule's multiplier, clipped to the bounds.
    - Discrete factor actions: the factor that brings the current LR (read from the
      observation) closest to the schedule's, in log space.
    """

    def __init__(
        self, schedule: Schedule, action_space: spaces.Space, factors: tuple[float, ...] = ()
    ) -> None:
        self.schedule = schedule
        self.action_space = action_space
        if isinstance(action_space, spaces.Discrete):
            if len(factors) != action_space.n:
                raise ValueError(
                    f"a Discrete({action_space.n}) action space needs its {action_space.n} "
                    f"factors, got {factors!r}"
                )
            self._log_factors = np.log(np.asarray(factors, dtype=np.float64))
        elif not isinstance(action_space, spaces.Box) or action_space.shape != (1,):
            raise ValueError(
                f"unsupported action space {action_space}; expected Box((1,)) or Discrete"
            )

    def target_log_multiplier(self, obs: np.ndarray) -> np.ndarray:
        """``log(schedule(progress))`` for each observation in a ``(n, window, features)`` batch."""
        progress = 1.0 - obs[:, -1, REMAINING].astype(np.float64)
        return np.log([self.schedule(float(p)) for p in progress])

    def predict(
        self,
        observation: np.ndarray,
        state: tuple | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, tuple | None]:
        """SB3's ``predict``: actions for one observation or a batch (deterministic)."""
        obs = np.asarray(observation)
        single = obs.ndim == 2
        batch = obs[None] if single else obs
        target = self.target_log_multiplier(batch)
        if isinstance(self.action_space, spaces.Discrete):
            current = batch[:, -1, LOG_LR].astype(np.float64)
            gaps = np.abs(current[:, None] + self._log_factors[None] - target[:, None])
            actions = gaps.argmin(axis=1)
        else:
            low, high = float(self.action_space.low[0]), float(self.action_space.high[0])
            actions = np.clip(target, low, high).astype(np.float32)[:, None]
        return (actions[0] if single else actions), state

    def __call__(
        self, observation: np.ndarray, state: tuple | None, episode_start: np.ndarray | None
    ) -> tuple[np.ndarray, tuple | None]:
        """imitation's ``PolicyCallable`` signature."""
        return self.predict(observation, state, episode_start)

    def __repr__(self) -> str:
        return f"SchedulePolicy({self.schedule!r})"
