"""EnvConfig: the environment's own options (the trainee's are separate), validated on construction."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Literal, get_args

from common.checks import check as check_value
from envs.observation import OBSERVATIONS
from envs.rewards import (
    LOSS_CAP,
    REWARDS,
    RewardName,
    make_reward,
)


@dataclass(frozen=True)
class EnvConfig:
    """Options of the environment (the trainee's options are separate).

    Attributes:
        steps_per_action: optimizer steps run at the LR one action sets.
        eval_every: optimizer steps between validation evaluations.
        window: optimizer steps (rows) in an observation.
        action_type: ``continuous`` log-multiplier of base_lr, or ``discrete`` factors.
        min_lr_mult, max_lr_mult: the LR is kept in ``[min, max] * base_lr``.
        factors: multiplicative LR factors of the discrete actions.
        initial_lr_mult: LR multiplier before the first discrete action.
        reward: reward preset (stability, neg_val_loss, val_improvement, best_minus_val).
        reward_params: keyword weights of the reward preset (finite, >= 0).
        divergence_margin: how far below the worst finished run a diverged run's return
            falls (see ``envs.rewards.divergence_reward``); > 0.
        reward_loss_cap: normalised losses enter rewards clipped to ``[0, cap]``; >= 1.
        inference_tokens: tokens generated at episode end to measure a GPT's tokens/s.
        base_lr_spread: task randomisation: each episode's base LR is drawn log-uniformly
            from ``[base_lr / spread, base_lr * spread]`` (the trainee's ``base_lr`` is the
            centre, e.g. a reference LR) by the env's ``np_random`` at ``reset()``; it goes
            to ``info["base_lr"]``, never into the observation (which sees only
            multipliers of it). 1 (default): every episode at the trainee's ``base_lr``.
        observation: the observation's version: ``v0`` (losses and gradient norms
            relative to the run's first values) or ``v1`` (dimensionless signals: loss
            position and slope, update-to-weight ratios and gradient-update cosines; see
            ``envs.observation.DimensionlessBuilder``). The ``-v1`` env ids set ``v1``.
    """

    steps_per_action: int = 32  # amortises env and policy cost over ~40 ms of MLP training
    eval_every: int = 64
    window: int = 512
    action_type: ActionType = "continuous"
    # 1e-3 ... 100 x base_lr: from any base LR of the sensitivity sweep (reference x 2^k,
    # k = -3..3) a policy reaches the reference LR with >= 12x to spare on either side
    # (evaluation.sweep.check_action_bounds); until 2026-12 the maximum was 10.
    min_lr_mult: float = 1e-3
    max_lr_mult: float = 100.0
    factors: tuple[float, ...] = (0.9, 1.0, 1.1)
    initial_lr_mult: float = 1.0
    reward: RewardName = "stability"
    reward_params: dict[str, float] | None = None
    divergence_margin: float = 1.0
    reward_loss_cap: float = LOSS_CAP
    inference_tokens: int = 64
    base_lr_spread: float = 1.0
    observation: ObservationVersion = "v0"

    def __post_init__(self) -> None:
        def check(ok: bool, name: str, valid: str) -> None:  # common.checks, value read here
            check_value(ok, name, getattr(self, name), valid)

        check(self.steps_per_action >= 1, "steps_per_action", "an integer >= 1")
        check(self.eval_every >= 1, "eval_every", "an integer >= 1")
        check(self.window >= 1, "window", "an integer >= 1")
        check(self.action_type in ACTION_TYPES, "action_type", f"one of {ACTION_TYPES}")
        check(0 < self.min_lr_mult <= 1, "min_lr_mult", "in (0, 1]")
        check(self.max_lr_mult >= 1 and math.isfinite(self.max_lr_mult), "max_lr_mult", ">= 1")
        check(
            len(self.factors) >= 1 and all(f > 0 and math.isfinite(f) for f in self.factors),
            "factors",
            "a non-empty tuple of positive factors",
        )
        check(
            self.min_lr_mult <= self.initial_lr_mult <= self.max_lr_mult,
            "initial_lr_mult",
            f"in [min_lr_mult, max_lr_mult] = [{self.min_lr_mult}, {self.max_lr_mult}]",
        )
        check(self.reward in REWARDS, "reward", f"one of {REWARDS}")
        check(self.observation in OBSERVATIONS, "observation", f"one of {tuple(OBSERVATIONS)}")
        check(
            math.isfinite(self.base_lr_spread) and self.base_lr_spread >= 1,
            "base_lr_spread",
            "a finite number >= 1 (1: no randomisation)",
        )
        check(
            math.isfinite(self.divergence_margin) and self.divergence_margin > 0,
            "divergence_margin",
            "a finite number > 0",
        )
        check(self.inference_tokens >= 0, "inference_tokens", ">= 0")
        check(
            math.isfinite(self.reward_loss_cap) and self.reward_loss_cap >= 1,
            "reward_loss_cap",
            "a finite number >= 1",
        )
        make_reward(self.reward, self.reward_params)  # validates the parameters


ENV_OPTIONS = frozenset(f.name for f in fields(EnvConfig))


ActionType = Literal["continuous", "discrete"]
ObservationVersion = Literal["v0", "v1"]


ACTION_TYPES: tuple[str, ...] = get_args(ActionType)
