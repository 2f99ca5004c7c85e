"""Every preset's return recorded beside the env's own, and the presets' ranking by hand."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

from envs.rewards import REWARDS
from envs.rollout import run_episode
from evaluation.methods import METHODS
from evaluation.reward_ranking import PresetReturns, reward_ranking
from evaluation.runs import RunSpec, execute
from experts.policy import SchedulePolicy
from experts.schedules import make_schedule

QUAD = "LRSchedule-Quadratic-v0"


class Constant:
    def __init__(self, log_mult: float) -> None:
        self.action = np.array([log_mult], np.float32)

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        return self.action, state


@pytest.mark.parametrize("base_lr", [0.05, 1e20])  # a finished and a diverged run (1e21: overflow)
def test_each_presets_return_is_the_return_of_the_env_configured_with_it(base_lr):
    recorded = None
    for name in REWARDS:
        env = gym.make(QUAD, total_steps=64, base_lr=base_lr, reward=name)
        returns = PresetReturns(env)
        episode = run_episode(env, Constant(math.log(10.0)), seed=3)
        returns.close()
        got = returns.finish(episode.final)
        assert got[name] == pytest.approx(episode.episode_return, rel=1e-12, abs=1e-12)
        # the env's reward is untouched, and every env records the same returns
        if recorded is not None:
            assert got == pytest.approx(recorded, rel=1e-12, abs=1e-12)
        recorded = got
        assert env.unwrapped.reward_fn is returns._own
    assert episode.diverged == (base_lr > 1)


def test_execute_records_the_return_of_every_preset():
    spec = RunSpec("final", QUAD, (("total_steps", 32),), METHODS["cosine"], 0.01, 10_000)
    run = execute(spec)
    assert set(run["returns"]) == set(REWARDS)
    env = gym.make(QUAD, total_steps=32, base_lr=0.01)  # the default preset: stability
    episode = run_episode(env, SchedulePolicy(make_schedule("cosine"), env.action_space), 10_000)
    assert run["returns"]["stability"] == pytest.approx(episode.episode_return, rel=1e-12)


def run(seed: int, loss: float, returns: dict[str, float], diverged: bool = False) -> dict:
    return {
        "seed": seed,
        "test_loss": None if diverged else loss,
        "loss0": 2.0,
        "diverged": diverged,
        "returns": returns,
    }


def test_ranking_by_hand():
    # seed 0: stability orders the three runs exactly (rho 1), neg_val_loss backwards (-1);
    # seed 1: the diverged run scores loss0 = 2.0, the worst
    runs = [
        run(0, 0.1, {"stability": 3.0, "neg_val_loss": 1.0}),
        run(0, 0.2, {"stability": 2.0, "neg_val_loss": 2.0}),
        run(0, 0.3, {"stability": 1.0, "neg_val_loss": 3.0}),
        run(1, 0.1, {"stability": 5.0, "neg_val_loss": 1.0}),
        run(1, 0.3, {"stability": 4.0, "neg_val_loss": 3.0}),
        run(1, 9.9, {"stability": -9.0, "neg_val_loss": 2.0}, diverged=True),
        {"seed": 1, "test_loss": 0.5, "loss0": 2.0, "diverged": False},  # no returns: left out
    ]
    out = reward_ranking(runs)
    assert (out["runs"], out["without_returns"]) == (6, 1)
    s = out["presets"]["stability"]
    assert s["rho_within_seed_mean"] == pytest.approx(1.0) and s["seeds"] == 2
    # pooled: returns 3,2,1,5,4,-9 against -loss -0.1,-0.2,-0.3,-0.1,-0.3,-2.0
    # (ranks 4,3,2,6,5,1 against 5.5,4,2.5,5.5,2.5,1: ties share their mean rank)
    ranks_r = np.array([4, 3, 2, 6, 5, 1], float)
    ranks_l = np.array([5.5, 4, 2.5, 5.5, 2.5, 1])
    assert s["rho_pooled"] == pytest.approx(np.corrcoef(ranks_r, ranks_l)[0, 1])  # 0.706
    assert s["meets_threshold"] is False  # pooled below 0.9, though 1.0 within each seed
    assert reward_ranking(runs, threshold=0.7)["presets"]["stability"]["meets_threshold"] is True
    n = out["presets"]["neg_val_loss"]
    # seed 0: -1; seed 1: returns 1,3,2 vs -loss -0.1,-0.3,-2.0 -> ranks 1,3,2 vs 3,2,1 -> -0.5
    assert n["rho_within_seed_mean"] == pytest.approx(-0.75) and n["rho_within_seed_min"] == -1.0
    assert n["meets_threshold"] is False
    assert out["presets"]["val_improvement"]["rho_pooled"] is None  # no run recorded it
