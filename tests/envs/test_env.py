"""LRScheduleEnv behaviour: applied LRs, divergence, rewards, bounds, vectorisation, errors."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import SubprocVecEnv

from envs import FEATURES, LRScheduleEnv
from envs.rewards import RewardInputs, best_minus_val, neg_val_loss, stability, val_improvement
from trainees import QuadraticTrainee


def spy_lrs(env: LRScheduleEnv) -> list[list[float]]:
    """Record the LR of every optimizer param group at every optimizer step."""
    trainee = env.unwrapped.trainee
    seen: list[list[float]] = []
    step = trainee.train_step

    def spying(lr):
        stats = step(lr)
        seen.append([g["lr"] for g in trainee.optimizer.param_groups])
        return stats

    trainee.train_step = spying
    return seen


def test_continuous_lr_reaches_the_optimizer_at_every_step():
    env = gym.make("LRSchedule-Quadratic-v0", steps_per_action=4, total_steps=40)
    seen = spy_lrs(env)
    env.reset(seed=0)
    base = env.unwrapped.trainee.base_lr
    actions = [0.0, -2.0, 1.5, -100.0, 100.0, 0.25]  # the last-but-one pair is clipped
    expected = []
    for a in actions:
        _, _, _, _, info = env.step(np.array([a], np.float32))
        lr = base * math.exp(float(np.clip(np.float32(a), math.log(1e-3), math.log(10.0))))
        assert info["lr"] == pytest.approx(lr, rel=1e-6)
        expected += [lr] * 4
    assert len(seen) == len(expected) == 24
    for groups, lr in zip(seen, expected, strict=True):
        assert groups == pytest.approx([lr] * len(groups), rel=1e-6)


def test_discrete_factors_compound_and_clip():
    env = gym.make(
        "LRSchedule-Quadratic-v0", action_type="discrete", steps_per_action=2,
        factors=(0.5, 1.0, 4.0), max_lr_mult=10.0, initial_lr_mult=2.0,
    )  # fmt: skip
    seen = spy_lrs(env)
    env.reset(seed=0)
    base = env.unwrapped.trainee.base_lr
    mult, expected = 2.0, []
    for a in [2, 1, 0, 2, 2, 2, 0]:  # x4 x1 x0.5 x4 x4 (clipped at 10) x4 (stays 10) x0.5
        mult = min(mult * (0.5, 1.0, 4.0)[a], 10.0)
        _, _, _, _, info = env.step(a)
        assert info["lr"] == pytest.approx(base * mult)
        expected += [base * mult] * 2
    assert [g[0] for g in seen] == pytest.approx(expected)
    assert mult == 5.0


def test_divergence_ends_episode_with_penalty_and_reset_recovers():
    env = gym.make("LRSchedule-Quadratic-v0", base_lr=1e20)  # max LR 1e21: weights overflow
    obs, _ = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(np.array([math.log(10.0)], np.float32))
    assert terminated and not truncated and info["diverged"]
    assert reward == -10.0
    assert obs in env.observation_space and np.isfinite(obs).all()
    assert info["step"] < env.unwrapped.trainee.total_steps
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(np.zeros(1, np.float32))
    obs, info = env.reset(seed=1)
    assert info["step"] == 0 and math.isfinite(info["val_loss"])
    _, _, terminated, _, info = env.step(np.array([math.log(1e-3)], np.float32))
    assert not info["diverged"] and not terminated


def test_budget_spent_terminates_with_final_metrics():
    env = gym.make("LRSchedule-Quadratic-v0", total_steps=20, steps_per_action=8)
    env.reset(seed=0)
    infos = [env.step(np.zeros(1, np.float32))[-1] for _ in range(3)]
    assert [i["step"] for i in infos] == [8, 16, 20]
    final = infos[-1]
    assert final["final_train_loss"] > 0 and final["total_train_time"] > 0
    assert final["best_val_loss"] <= final["val_loss"]
    assert "final_train_loss" not in infos[0]


def test_gpt_reports_inference_speed(corpus_dir):
    env = gym.make(
        "LRSchedule-GPT-v0", data_dir=corpus_dir, total_steps=4, steps_per_action=4,
        eval_every=4, inference_tokens=8,
    )  # fmt: skip
    env.reset(seed=0)
    *_, terminated, _, info = env.step(np.zeros(1, np.float32))
    assert terminated and info["avg_inference_tokens_per_second"] > 0


def total_reward(reward: str, log_mult: float, seed: int = 0) -> float:
    env = gym.make("LRSchedule-Quadratic-v0", reward=reward, total_steps=64)
    env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        _, r, done, _, _ = env.step(np.array([log_mult], np.float32))
        total += r
    return total


@pytest.mark.parametrize("reward", ["stability", "neg_val_loss", "val_improvement"])
def test_improving_run_earns_more_reward(reward):
    good = total_reward(reward, 0.0)  # base LR: the regression is solved
    stuck = total_reward(reward, math.log(1e-3))  # 1000x smaller: barely moves
    assert good > stuck


def inputs(train, val, best_before, **kw) -> RewardInputs:
    defaults = dict(prev_train=1.0, best_after=min(best_before, val[-1]), evaluated=True)
    defaults |= dict(remaining=0.5) | kw
    return RewardInputs(np.array(train), val=np.array(val), best_before=best_before, **defaults)


def test_reward_signs():
    falling = inputs([0.9, 0.8, 0.7], [0.7, 0.7, 0.7], best_before=0.8)
    rising = inputs([1.1, 1.3, 1.6], [1.2, 1.2, 1.2], best_before=0.8)
    spiky = inputs([0.9, 1.2, 0.9], [0.7, 0.7, 0.7], best_before=0.8)
    assert stability(falling) > stability(spiky) > stability(rising)
    assert neg_val_loss(falling) > neg_val_loss(rising)
    assert val_improvement(falling) == pytest.approx(0.1) and val_improvement(rising) == 0.0
    assert val_improvement(inputs([0.9], [0.7], 0.8, evaluated=False)) == 0.0
    assert best_minus_val(falling) > best_minus_val(rising)
    assert best_minus_val(falling) == pytest.approx(0.1 * 0.5)  # at its best: the time term only


def test_observation_columns_and_bounds():
    env = gym.make("LRSchedule-Quadratic-v0", window=20, steps_per_action=8, total_steps=64)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (20, len(FEATURES)) == env.observation_space.shape
    assert obs[:, -1].sum() == 1 and obs[-1, 0] == 1.0  # one row: step 0, full budget
    rng = np.random.default_rng(0)
    for i in range(1, 8):
        a = rng.uniform(-12, 5)  # includes out-of-range actions
        obs, *_ = env.step(np.array([a], np.float32))
        assert obs in env.observation_space
        assert obs[:, -1].sum() == min(1 + 8 * i, 20)
        assert obs[-1, 0] == pytest.approx(1 - 8 * i / 64)
        assert obs[-1, FEATURES.index("log_lr_multiplier")] == pytest.approx(
            np.clip(np.float32(a), math.log(1e-3), math.log(10)), abs=1e-5
        )
        remaining = obs[obs[:, -1] == 1, 0]
        assert np.all(np.diff(remaining) < 0)  # oldest first


def test_observation_reports_evaluations_and_staleness():
    env = gym.make("LRSchedule-Quadratic-v0", window=16, steps_per_action=8, eval_every=16)
    env.reset(seed=0)
    env.step(np.zeros(1, np.float32))
    obs, *_, info = env.step(np.zeros(1, np.float32))
    stale = obs[-16:, FEATURES.index("val_staleness")]
    assert stale[-1] == 0.0 and stale[-2] == pytest.approx(15 / 16)
    val_col = obs[-1, FEATURES.index("log_val_loss")]
    assert val_col == pytest.approx(math.log(info["val_loss"] / env.unwrapped.loss0), abs=1e-5)
    assert val_col < 0  # training improved on the initial model


def test_subproc_vec_env_runs_two_envs():
    vec = SubprocVecEnv([lambda: gym.make("LRSchedule-Quadratic-v0", window=16)] * 2)
    try:
        vec.seed(0)
        obs = vec.reset()
        assert obs.shape == (2, 16, len(FEATURES))
        for _ in range(3):
            obs, rewards, dones, infos = vec.step(np.zeros((2, 1), np.float32))
        assert rewards.shape == (2,) and not dones.any()
        assert [i["step"] for i in infos] == [24, 24]
        assert not np.array_equal(obs[0], obs[1])  # seeds 0 and 1: different runs
    finally:
        vec.close()


def test_trainee_instance_can_be_passed():
    env = LRScheduleEnv(QuadraticTrainee(), window=8)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (8, len(FEATURES))
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['dim'\]"):
        LRScheduleEnv(QuadraticTrainee(), dim=3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(action_type="binary"), r"action_type='binary'.*\('continuous', 'discrete'\)"),
        (dict(reward="accuracy"), r"reward='accuracy'.*stability"),
        (dict(reward_params={"beta": 1.0}), r"unknown parameter\(s\) \['beta'\].*increase"),
        (dict(window=0), r"window=0 is invalid"),
        (dict(min_lr_mult=0.0), r"min_lr_mult=0.0 is invalid"),
        (dict(initial_lr_mult=50.0), r"initial_lr_mult=50.0 is invalid.*\[0.001, 10.0\]"),
        (dict(lr=0.1), r"unknown option\(s\) \['lr'\].*valid env options"),
        (dict(dim=0), r"dim=0 is invalid"),
    ],
)
def test_bad_kwargs_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gym.make("LRSchedule-Quadratic-v0", **kwargs)


def test_bad_gpt_and_image_kwargs():
    with pytest.raises(ValueError, match=r"dataset='ptb'.*shakespeare_char"):
        gym.make("LRSchedule-GPT-v0", dataset="ptb")
    with pytest.raises(ValueError, match=r"preset='huge'.*\('tiny', 'small'\)"):
        gym.make("LRSchedule-GPT-v0", preset="huge")
    with pytest.raises(ValueError, match=r"dataset='cifar'.*\('mnist', 'digits'\)"):
        gym.make("LRSchedule-MLP-v0", dataset="cifar")


def test_bad_actions():
    env = gym.make("LRSchedule-Quadratic-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="NaN"):
        env.unwrapped.step(np.array([np.nan], np.float32))
    denv = gym.make("LRSchedule-Quadratic-v0", action_type="discrete")
    denv.reset(seed=0)
    with pytest.raises(ValueError, match=r"action 3 is out of range; valid: 0..2"):
        denv.unwrapped.step(3)
