"""The privileged expert of a randomised task: the tuned schedule, whatever base LR was drawn.

Under task randomisation (``EnvConfig.base_lr_spread``) an episode's base LR is drawn
around a reference LR and never shown to the policy. The expert knows it: at progress
``p`` it asks for the LR ``s(p) · reference``, i.e. the multiplier
``s(p) · reference / base_lr`` of the episode's base LR (``info["base_lr"]``). It is
defined at any state the env is in, so it can label the states another policy visited
(DAgger). Continuous (log-multiplier) actions only.
"""

from __future__ import annotations

import math

import numpy as np
from gymnasium import spaces

from experts.policy import REMAINING
from experts.schedules import Schedule


class PrivilegedSchedulePolicy:
    """``schedule`` at the reference LR, as actions of an env whose base LR was drawn."""

    def __init__(self, schedule: Schedule, action_space: spaces.Space, reference_lr: float):
        if not isinstance(action_space, spaces.Box) or action_space.shape != (1,):
            raise ValueError(
                f"unsupported action space {action_space}; the privileged expert acts in "
                "Box((1,)) log multipliers"
            )
        if not (math.isfinite(reference_lr) and reference_lr > 0):
            raise ValueError(f"reference_lr={reference_lr} must be a finite number > 0")
        self.schedule, self.reference_lr = schedule, reference_lr
        self.low, self.high = float(action_space.low[0]), float(action_space.high[0])

    def action(self, progress: float, base_lr: float) -> np.ndarray:
        """``log(s(progress) · reference / base_lr)``, clipped to the action bounds."""
        target = math.log(self.schedule(progress) * self.reference_lr / base_lr)
        return np.array([min(max(target, self.low), self.high)], dtype=np.float32)

    def label(self, observation: np.ndarray, base_lr: float) -> np.ndarray:
        """The expert's action at a state: progress from the observation (its newest row),
        the base LR from the env (the privileged part)."""
        progress = 1.0 - float(np.asarray(observation)[-1, REMAINING])
        return self.action(progress, base_lr)

    def __repr__(self) -> str:
        return f"PrivilegedSchedulePolicy({self.schedule!r}, reference_lr={self.reference_lr})"
