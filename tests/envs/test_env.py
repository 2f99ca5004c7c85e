"""LRScheduleEnv behaviour: applied LRs, divergence, rewards, bounds, vectorisation, errors."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import SubprocVecEnv

from envs import FEATURES, LRScheduleEnv
from envs.rewards import divergence_reward
from tests.envs.scripted import ScriptedTrainee
from tests.spies import spy_lrs
from trainees import QuadraticTrainee


def test_continuous_lr_reaches_the_optimizer_at_every_step():
    env = gym.make("LRSchedule-Quadratic-v0", steps_per_action=4, total_steps=40)
    seen = spy_lrs(env)
    env.reset(seed=0)
    base = env.unwrapped.trainee.base_lr
    actions = [0.0, -2.0, 1.5, -100.0, 100.0, 0.25]  # the last-but-one pair is clipped
    expected = []
    for a in actions:
        _, _, _, _, info = env.step(np.array([a], np.float32))
        lr = base * math.exp(float(np.clip(np.float32(a), math.log(1e-3), math.log(100.0))))
        assert info["lr"] == pytest.approx(lr, rel=1e-6)
        expected += [lr] * 4
    assert len(seen) == len(expected) == 24
    for groups, lr in zip(seen, expected, strict=True):
        assert groups == pytest.approx([lr] * len(groups), rel=1e-6)


def test_discrete_factors_compound_and_clip():
    env = gym.make(
        "LRSchedule-Quadratic-v0",
        action_type="discrete",
        steps_per_action=2,
        factors=(0.5, 1.0, 4.0),
        max_lr_mult=10.0,
        initial_lr_mult=2.0,
    )
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
    # step 1 at LR 1e21 is finite but throws the weights to ~1e21; the loss of step 2 overflows
    assert info["step"] == 2 and env.unwrapped.trainee.total_steps == 256
    # stability defaults [low, high] = [-(1 + 0.5 + 0.5) * 4, 0] = [-8, 0] (loss cap 4),
    # margin 1, remaining (256 - 2) / 256: -8 - 0 - 1 * (1 + 254/256) = -9.9921875
    remaining = (256 - info["step"]) / 256
    assert reward == -8.0 - 0.0 - 1.0 * (1.0 + remaining) == -9.9921875
    assert reward == divergence_reward("stability", None, remaining=remaining, margin=1.0)
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
        "LRSchedule-GPT-v0",
        data_dir=corpus_dir,
        total_steps=4,
        steps_per_action=4,
        eval_every=4,
        inference_tokens=8,
    )
    env.reset(seed=0)
    *_, terminated, _, info = env.step(np.zeros(1, np.float32))
    assert terminated and info["avg_inference_tokens_per_second"] > 0


def run_quadratic(reward: str, log_mult: float, seed: int = 0):
    """A whole 64-step episode at one LR, 8 optimizer steps per action and per evaluation.

    Returns the return, the infos, loss0 and every optimizer step's minibatch loss.
    """
    env = gym.make(
        "LRSchedule-Quadratic-v0",
        reward=reward,
        total_steps=64,
        steps_per_action=8,
        eval_every=8,
    )
    trainee = env.unwrapped.trainee
    losses: list[float] = []
    step = trainee.train_step

    def spying(lr):
        stats = step(lr)
        losses.append(stats.loss)
        return stats

    trainee.train_step = spying
    env.reset(seed=seed)
    total, infos, done = 0.0, [], False
    while not done:
        _, r, done, _, info = env.step(np.array([log_mult], np.float32))
        total += r
        infos.append(info)
    return total, infos, env.unwrapped.loss0, np.array(losses)


def expected_return(reward: str, infos, loss0: float, losses: np.ndarray) -> float:
    """The return by the presets' whole-run identities (T = 64, evaluations at 8, 16, ...).

    With steps_per_action == eval_every == 8, env step i covers optimizer steps 8i-7..8i and
    evaluates at 8i: its first 7 steps run under the previous evaluation (loss0 for i = 1),
    the last under the new one, ``info["val_loss"]``.
    """
    vals = np.array([loss0] + [i["val_loss"] for i in infos]) / loss0
    in_force = np.concatenate([[vals[i]] * 7 + [vals[i + 1]] for i in range(8)])
    if reward == "val_improvement":  # telescopes: 1 - best / loss0
        return 1.0 - infos[-1]["best_val_loss"] / loss0
    if reward == "neg_val_loss":  # minus the mean validation loss in force
        return -in_force.sum() / 64
    train = losses / loss0  # stability: the run's mean per-step cost
    rises = np.diff(train, prepend=1.0).clip(min=0).sum()
    return -(1.0 * rises + 0.5 * train.sum() + 0.5 * in_force.sum()) / 64


@pytest.mark.parametrize("reward", ["stability", "neg_val_loss", "val_improvement"])
def test_improving_run_earns_more_reward(reward):
    good, good_infos, loss0, good_losses = run_quadratic(reward, 0.0)  # base LR: solved
    stuck, stuck_infos, _, stuck_losses = run_quadratic(reward, math.log(1e-3))  # barely moves
    assert len(good_infos) == len(stuck_infos) == 8 and len(good_losses) == 64
    assert good == pytest.approx(expected_return(reward, good_infos, loss0, good_losses))
    assert stuck == pytest.approx(expected_return(reward, stuck_infos, loss0, stuck_losses))
    assert good > stuck


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
            np.clip(np.float32(a), math.log(1e-3), math.log(100)), abs=1e-5
        )
        remaining = obs[obs[:, -1] == 1, 0]
        assert np.all(np.diff(remaining) < 0)  # oldest first


@pytest.mark.parametrize(
    ("kwargs", "log_mult", "lr"),
    [
        # log(0.3) = -1.2039728..., the LR 0.3 * base_lr 0.05 = 0.015
        (dict(action_type="discrete", initial_lr_mult=0.3), np.float32(math.log(0.3)), 0.015),
        (dict(action_type="discrete"), 0.0, 0.05),  # log(1.0)
        # continuous actions: every step sets its own LR; initial_lr_mult is not used
        (dict(action_type="continuous", initial_lr_mult=0.3), 0.0, 0.05),
        (dict(), 0.0, 0.05),
    ],
)
def test_reset_row(kwargs, log_mult, lr):
    env = gym.make("LRSchedule-Quadratic-v0", window=4, **kwargs)
    obs, info = env.reset(seed=0)
    assert obs[-1, FEATURES.index("log_lr_multiplier")] == log_mult
    assert obs[-1, FEATURES.index("log_lr_multiplier")] == pytest.approx(math.log(lr / 0.05))
    # the full budget, zero log-ratios of the losses and gradient norms, the mask
    expected = np.zeros((4, len(FEATURES)), np.float32)
    expected[-1, [FEATURES.index("remaining_fraction"), FEATURES.index("mask")]] = 1.0
    expected[-1, FEATURES.index("log_lr_multiplier")] = log_mult
    np.testing.assert_array_equal(obs, expected)
    assert info["lr"] == pytest.approx(lr) and info["step"] == 0


def test_render_modes_metadata():
    assert LRScheduleEnv.metadata["render_modes"] == ["ansi", "rgb_array"]
    assert gym.make("LRSchedule-Quadratic-v0").metadata["render_modes"] == ["ansi", "rgb_array"]


def test_render_ansi_names_the_step_and_the_lr():
    env = gym.make("LRSchedule-Quadratic-v0", render_mode="ansi")  # 8 steps per action, T 256
    _, info = env.reset(seed=0)
    loss0 = info["val_loss"]
    # base_lr 0.05; no minibatch yet; val and best are loss0
    assert env.render() == f"step 0/256  lr 5.000e-02  train -  val {loss0:.4f}  best {loss0:.4f}"
    _, _, _, _, info = env.step(np.array([math.log(0.5)], np.float32))
    text = env.render()
    assert isinstance(text, str)
    # LR 0.05 * 0.5 = 0.025; no evaluation in the first 8 steps (eval_every 16): val is loss0
    assert text == (
        f"step 8/256  lr 2.500e-02  train {info['train_loss']:.4f}  val {loss0:.4f}  "
        f"best {loss0:.4f}"
    )
    env.step(np.array([math.log(0.5)], np.float32))
    assert env.render().startswith("step 16/256  lr 2.500e-02  train ")


def test_render_rgb_array_is_an_image():
    env = gym.make("LRSchedule-Quadratic-v0", render_mode="rgb_array")
    env.reset(seed=0)
    first = env.render()
    assert first.shape == (240, 320, 3) and first.dtype == np.uint8
    env.step(np.zeros(1, np.float32))
    env.step(np.zeros(1, np.float32))
    img = env.render()
    assert img.shape == (240, 320, 3) and img.dtype == np.uint8
    assert img.min() < 128 and img.max() == 255  # dark curves and axes on a white background
    assert not np.array_equal(img, first)  # the curves grew


def test_render_none_returns_none():
    env = gym.make("LRSchedule-Quadratic-v0")
    env.reset(seed=0)
    env.step(np.zeros(1, np.float32))
    assert env.unwrapped.render_mode is None and env.render() is None


def test_unknown_render_mode_is_a_clear_error():
    match = r"render_mode='human' is invalid; valid: None, 'ansi', 'rgb_array'"
    with pytest.raises(ValueError, match=match):
        LRScheduleEnv("quadratic", render_mode="human")
    # gym.make("...", render_mode="human") instead wraps an "rgb_array" env in gymnasium's
    # HumanRendering (gymnasium's own fallback); any other unknown mode reaches the env
    with pytest.raises(ValueError, match=r"render_mode='text' is invalid; valid: None, 'ansi'"):
        gym.make("LRSchedule-Quadratic-v0", render_mode="text")


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
        (dict(initial_lr_mult=500.0), r"initial_lr_mult=500.0 is invalid.*\[0.001, 100.0\]"),
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
    with pytest.raises(
        ValueError, match=r"dataset='cifar'.*\('mnist', 'digits', 'mnist_permuted', 'mnist_14'\)"
    ):
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


def test_task_randomisation_draws_the_base_lr_per_episode():
    """base_lr_spread: log-uniform in [base / r, base * r] from the env's np_random, drawn
    after the trainee's seed (the reset observations, which hold no LR, are a fixed-LR
    env's). That no observation shows the draw: the two tests below, over whole episodes."""
    fixed = gym.make("LRSchedule-Quadratic-v0", total_steps=32, base_lr=0.01)
    spread = gym.make("LRSchedule-Quadratic-v0", total_steps=32, base_lr=0.01, base_lr_spread=8.0)
    drawn = []
    for seed in range(40):
        obs, _ = spread.reset(seed=seed)
        info = spread.step(np.zeros(1, np.float32))[-1]
        drawn.append(info["base_lr"])
        assert info["lr"] == info["base_lr"]  # log multiplier 0: the LR is the drawn base
        # the same seed draws the same trainee seed (and the base LR after it)
        fixed_obs, _ = fixed.reset(seed=seed)
        assert np.array_equal(obs, fixed_obs)
    logs = np.log(np.array(drawn) / 0.01)
    assert np.all(np.abs(logs) <= math.log(8.0)) and logs.min() < -1 and logs.max() > 1
    spread.reset(seed=3)
    a = spread.step(np.zeros(1, np.float32))[-1]["base_lr"]
    spread.reset(seed=3)
    assert spread.step(np.zeros(1, np.float32))[-1]["base_lr"] == a
    with pytest.raises(ValueError, match=r"base_lr_spread=0.5 is invalid"):
        gym.make("LRSchedule-Quadratic-v0", base_lr_spread=0.5)


LOG_LR = FEATURES.index("log_lr_multiplier")


def drive(env: gym.Env, seed: int, actions) -> tuple[list[np.ndarray], list[dict]]:
    """The observations (reset one first) and step infos of an episode with ``actions``."""
    obs, info = env.reset(seed=seed)
    observations, infos = [obs], [info]
    for a in actions:
        obs, _, terminated, truncated, info = env.step(np.array([a]))
        observations.append(obs)
        infos.append(info)
    assert terminated and not truncated
    return observations, infos


def test_the_drawn_base_lr_reaches_no_column_over_a_whole_episode():
    """Signals that do not depend on the LR (a scripted trainee), two episodes whose drawn
    base LRs differ, the same LR multipliers: every observation is the same, bit for bit.
    Had the base LR or the absolute LR (which differ) entered any column, it would differ."""
    steps = 48
    train = 2.0 * np.exp(-np.arange(steps) / 20) + 0.1 * np.sin(np.arange(steps))
    trainee = ScriptedTrainee(train, 1.5 * np.exp(-np.arange(steps) / 30), loss0=2.0)
    env = LRScheduleEnv(trainee, window=16, steps_per_action=4, eval_every=8, base_lr_spread=8.0)
    drawn = {s: env.reset(seed=s)[1]["base_lr"] for s in range(20)}
    low, high = min(drawn, key=drawn.get), max(drawn, key=drawn.get)
    assert drawn[high] / drawn[low] > 4
    actions = [-4.0, -2.5, -1.0, 0.0, 0.5, 1.0, 0.25, -0.5, -1.5, -2.0, -3.0, -4.5]
    obs_a, infos_a = drive(env, low, actions)
    obs_b, infos_b = drive(env, high, actions)
    for a, b, ia, ib in zip(obs_a, obs_b, infos_a, infos_b, strict=True):
        assert np.array_equal(a, b)
        assert ia["base_lr"] == drawn[low] and ib["base_lr"] == drawn[high]
        assert ib["lr"] / ia["lr"] == pytest.approx(drawn[high] / drawn[low])
    # the LR is seen as the multiplier of the drawn base LR only: each step's 4 rows
    for n, a in enumerate(actions, start=1):
        assert obs_a[n][-4:, LOG_LR] == pytest.approx([a] * 4, abs=1e-6)
        assert obs_a[n][-1, LOG_LR] == pytest.approx(
            math.log(infos_a[n]["lr"] / infos_a[n]["base_lr"]), abs=1e-6
        )


def test_a_drawn_and_a_given_base_lr_train_alike_and_differ_only_in_the_lr_multiplier():
    """A real trainee, one seed (the same trainee seed): the drawn base LR b and a given
    4 b, with multipliers that apply the same LRs, train the same run; the observations
    differ only in the log LR multiplier column, by log 4 in every row after an action."""
    spread = gym.make("LRSchedule-Quadratic-v0", total_steps=48, base_lr=0.01, base_lr_spread=8.0)
    b = spread.reset(seed=5)[1]["base_lr"]
    assert b != 0.01
    given = gym.make("LRSchedule-Quadratic-v0", total_steps=48, base_lr=4 * b)
    actions = [-3.0, -1.0, 0.0, 0.5, -0.5, -2.0]
    obs_a, infos_a = drive(spread, 5, actions)
    obs_b, infos_b = drive(given, 5, [a - math.log(4) for a in actions])
    others = [i for i in range(len(FEATURES)) if i != LOG_LR]
    for a, b_, ia, ib in zip(obs_a[1:], obs_b[1:], infos_a[1:], infos_b[1:], strict=True):
        assert ia["lr"] == pytest.approx(ib["lr"], rel=1e-12)
        np.testing.assert_allclose(a[:, others], b_[:, others], rtol=1e-5, atol=1e-6)
        acted = (a[:, -1] == 1) & (a[:, 0] < 1)  # real rows but the reset one (no action yet)
        assert a[acted, LOG_LR] - b_[acted, LOG_LR] == pytest.approx(math.log(4), abs=1e-5)
