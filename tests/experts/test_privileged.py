"""The privileged expert: the tuned schedule at the reference LR whatever base LR was drawn."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

from experts.privileged import PrivilegedSchedulePolicy
from experts.schedules import make_schedule

QUAD = "LRSchedule-Quadratic-v0"


def test_its_lr_is_the_schedule_at_the_reference_whatever_the_drawn_base_lr():
    env = gym.make(QUAD, total_steps=64, base_lr=0.01, base_lr_spread=8.0)
    cosine = make_schedule("cosine")
    expert = PrivilegedSchedulePolicy(cosine, env.action_space, reference_lr=0.01)
    for seed in range(5):
        obs, info = env.reset(seed=seed)
        drawn = env.unwrapped.base_lr
        assert drawn != pytest.approx(0.01)  # a randomised task
        done = False
        while not done:
            progress = env.unwrapped.trainee.steps_done / 64
            action = expert.label(obs, drawn)
            obs, _, done, _, info = env.step(action)
            # the LR applied is cosine's at the reference LR, not at the drawn base LR
            assert info["lr"] == pytest.approx(cosine(progress) * 0.01, rel=1e-5)
            assert info["base_lr"] == drawn


def test_by_hand_and_clipped_to_the_bounds():
    space = gym.spaces.Box(math.log(1e-3), math.log(100.0), (1,), np.float32)
    expert = PrivilegedSchedulePolicy(make_schedule("constant"), space, reference_lr=4e-3)
    assert expert.action(0.3, 5e-4)[0] == pytest.approx(math.log(8.0))  # k = -3: x8
    assert expert.action(0.3, 3.2e-2)[0] == pytest.approx(math.log(1 / 8))  # k = +3
    assert expert.action(0.3, 4e-6)[0] == pytest.approx(math.log(100.0))  # clipped
    with pytest.raises(ValueError, match="Box"):
        PrivilegedSchedulePolicy(make_schedule("constant"), gym.spaces.Discrete(3), 1e-3)
