"""Observation v1: each dimensionless signal against a hand computation, and its invariances."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from envs import LRScheduleEnv
from envs.observation import (
    FEATURES_V1,
    LOG_BOUND,
    SLOPE_STEPS,
    DimensionlessBuilder,
    observation_version,
    slope_t,
)
from tests.envs.scripted import ScriptedTrainee
from trainees.gradnorm import GradNormPool, UpdateMoments, fraction_bucket_matrix, read_step

COL = {name: i for i, name in enumerate(FEATURES_V1)}


def test_buckets_split_the_parameters_by_count():
    # 6 + 2 parameters in 4 runs of 2: the first tensor fills three runs, the second one
    np.testing.assert_allclose(
        fraction_bucket_matrix([6, 2]), [[1 / 3, 0], [1 / 3, 0], [1 / 3, 0], [0, 1]]
    )
    np.testing.assert_allclose(fraction_bucket_matrix([3]), [[0.25], [0.25], [0.25], [0.25]])
    # 2, 1 in runs of 0.75: tensor 0 gives 0.75, 0.75, 0.5 of its 2; tensor 1 0.25, 0.75
    np.testing.assert_allclose(
        fraction_bucket_matrix([2, 1]), [[0.375, 0], [0.375, 0], [0.25, 0.25], [0, 0.75]]
    )
    with pytest.raises(ValueError, match="sizes="):
        fraction_bucket_matrix([4, 0])


def test_update_moments_by_hand():
    layer = nn.Linear(2, 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 2.0]]))
        layer.bias.copy_(torch.tensor([0.5]))
    params = list(layer.parameters())
    pool, moments = GradNormPool(2), UpdateMoments(params)

    def read(grads):
        for p, g in zip(params, grads, strict=True):
            p.grad = torch.tensor(g)
        return read_step(pool, moments, torch.tensor(0.7), params)

    loss, pooled, _, first = read([[[3.0, 4.0]], [0.0]])
    assert loss == pytest.approx(0.7) and pooled[0] == pytest.approx(5.0)
    # before any update: |g|^2 = 25, |θ|^2 = 1 + 4 + 0.25, and no update
    np.testing.assert_allclose(first[:, 0], [25.0, 5.25, 0.0, 0.0])
    with torch.no_grad():  # an "optimizer step": u = (-0.1, 0.2), (-0.1)
        layer.weight.copy_(torch.tensor([[0.9, 2.2]]))
        layer.bias.copy_(torch.tensor([0.4]))
    _, _, _, m = read([[[1.0, -1.0]], [2.0]])
    # pooled: |g|^2 = 1 + 1 + 4; |θ|^2 = 0.81 + 4.84 + 0.16; |u|^2 = 0.01 + 0.04 + 0.01;
    # g·u = (1)(-0.1) + (-1)(0.2) + (2)(-0.1) = -0.5
    np.testing.assert_allclose(m[:, 0], [6.0, 5.81, 0.06, -0.5], rtol=1e-6)
    # bucket 3 is 3/4 of the bias: 0.75 * (4, 0.16, 0.01, -0.2)
    np.testing.assert_allclose(m[:, 4], [3.0, 0.12, 0.0075, -0.15], rtol=1e-6)
    # bucket 0 is 3/8 of the weight: 0.375 * (2, 5.65, 0.05, -0.3)
    np.testing.assert_allclose(m[:, 1], 0.375 * np.array([2.0, 5.65, 0.05, -0.3]), rtol=1e-6)
    # resuming from the snapshot measures the same update
    snapshot = moments.state_dict()
    other = UpdateMoments(params)
    other.load_state_dict(snapshot)
    with torch.no_grad():
        layer.bias.add_(1.0)
    _, _, _, a = read([[[1.0, 1.0]], [1.0]])
    _, _, _, b = read_step(pool, other, torch.tensor(0.7), params)
    np.testing.assert_array_equal(a, b)
    assert a[2, 0] == pytest.approx(1.0)  # |u|^2: the bias moved by 1


def test_moments_are_measured_once_every_k_reads():
    layer = nn.Linear(3, 1)
    params = list(layer.parameters())
    pool, moments = GradNormPool(2), UpdateMoments(params, every=4)
    seen = []
    for step in range(1, 9):
        for p in params:
            p.grad = torch.ones_like(p)
        _, _, _, m = read_step(pool, moments, torch.tensor(1.0), params)
        seen.append(m is not None)
        if step == 4:  # the update of step 3 (made below, after read 3)
            assert m[2, 0] == pytest.approx(4 * 0.03**2)  # 4 parameters moved by 0.03
            assert m[3, 0] == pytest.approx(4 * 0.03)  # g · u
        with torch.no_grad():
            for p in params:
                p.add_(0.01 * step)
    assert seen == [False, False, False, True] * 2
    with pytest.raises(ValueError, match="every=0"):
        UpdateMoments(params, every=0)


def test_slope_t_is_the_regression_t_statistic():
    rng = np.random.default_rng(0)
    y = 3.0 - 0.02 * np.arange(80) + rng.normal(0, 0.3, 80)
    t = slope_t(y, 0)
    for j in (2, 5, SLOPE_STEPS - 1, SLOPE_STEPS + 10, 79):
        window = y[max(0, j - SLOPE_STEPS + 1) : j + 1]
        fit = stats.linregress(np.arange(len(window)), window)
        assert t[j] == pytest.approx(fit.slope / fit.stderr, rel=1e-8)
    assert t[0] == t[1] == 0.0  # fewer than 3 points
    # rows after `first` only, the earlier losses still in their windows
    np.testing.assert_allclose(slope_t(y, 50), t[50:], rtol=1e-9)
    # unchanged when the loss is scaled and shifted
    np.testing.assert_allclose(slope_t(7.5 * y - 2.0, 0), t, rtol=1e-7)


def moments_rows(k: int, rng: np.random.Generator) -> np.ndarray:
    g2, p2, u2 = (rng.uniform(0.5, 2.0, (k, 5)) for _ in range(3))
    dot = rng.uniform(-0.5, 0.5, (k, 5)) * np.sqrt(g2 * u2)
    return np.stack([g2, p2, u2, dot], 1)


def feed(builder: DimensionlessBuilder, train, val, moments, scale=1.0, shift=0.0):
    k = len(train)
    return builder.append(
        remaining=np.linspace(0.9, 0.5, k),
        train_loss=scale * np.asarray(train) + shift,
        val_loss=scale * np.asarray(val) + shift,
        staleness=np.zeros(k),
        moments=moments,
        lr_mult=2.0,
    )


def test_loss_features_by_hand():
    builder = DimensionlessBuilder(window=4)
    first = builder.reset(loss0=5.0, lr_mult=2.0)
    assert first[-1, COL["train_loss_position"]] == first[-1, COL["val_loss_position"]] == 1
    assert first[-1, COL["log_update_ratio"]] == -LOG_BOUND  # no update yet
    obs = feed(builder, [4.0, 2.0, 3.0], [5.0, 4.0, 4.5], moments_rows(3, np.random.default_rng(1)))
    # EMA 4, 0.95*4 + 0.05*2 = 3.9, 0.95*3.9 + 0.05*3 = 3.855: its running range is
    # empty, then [3.9, 4] with 3.9 at the bottom, then [3.855, 4] with 3.855 at the bottom
    np.testing.assert_allclose(obs[-3:, COL["train_loss_position"]], [1.0, 0.0, 0.0])
    # val in [5, 5], then 4 in [4, 5], then 4.5 in [4, 5]
    np.testing.assert_allclose(obs[-3:, COL["val_loss_position"]], [1.0, 0.0, 0.5])
    # 4, 2, 3 on 0, 1, 2: slope -0.5, residuals 0.5, -1, 0.5, SE = sqrt(1.5 / 1 / 2)
    t = -0.5 / math.sqrt(0.75)
    np.testing.assert_allclose(obs[-3:, COL["loss_slope_t"]], [0.0, 0.0, np.arcsinh(t)], rtol=1e-6)
    assert obs[-1, COL["log_lr_multiplier"]] == pytest.approx(math.log(2.0))
    assert obs[-4, COL["remaining_fraction"]] == 1.0  # the reset row, shifted up


def test_update_features_by_hand():
    builder = DimensionlessBuilder(window=8)
    builder.reset(loss0=1.0)
    m = moments_rows(3, np.random.default_rng(2))
    obs = feed(builder, [1.0, 0.9, 0.8], [1.0, 1.0, 0.9], m)
    ratio = [COL[n] for n in FEATURES_V1 if n.startswith("log_update_ratio")]
    cosine = [COL[n] for n in FEATURES_V1 if n.startswith("update_cosine")]
    g2, p2, u2, dot = (m[:, i] for i in range(4))
    np.testing.assert_allclose(obs[-3:, ratio], np.log(np.sqrt(u2 / p2)), rtol=1e-6)
    np.testing.assert_allclose(obs[-3:, cosine], dot / np.sqrt(g2 * u2), rtol=1e-5)
    m[0, 2:] = 0.0  # no update (the first step): cosine 0, ratio at its lower bound
    builder.reset(loss0=1.0)
    obs = feed(builder, [1.0], [1.0], m[:1])
    assert obs[-1, ratio[0]] == -LOG_BOUND and obs[-1, cosine[0]] == 0.0


def test_loss_features_do_not_change_when_the_loss_is_scaled():
    rng = np.random.default_rng(3)
    train = 2.0 + 0.3 * np.sin(np.linspace(0, 9, 100)) + rng.normal(0, 0.05, 100)
    val = np.repeat(train[::10] + 0.1, 10)
    m = moments_rows(100, rng)
    a, b = DimensionlessBuilder(window=64), DimensionlessBuilder(window=64)
    a.reset(loss0=2.5)
    b.reset(loss0=2.5 * 40.0 + 3.0)
    for lo in range(0, 100, 32):  # one append per action, as the env does
        obs_a = feed(a, train[lo : lo + 32], val[lo : lo + 32], m[lo : lo + 32])
        obs_b = feed(b, train[lo : lo + 32], val[lo : lo + 32], m[lo : lo + 32], 40.0, 3.0)
        np.testing.assert_allclose(obs_a, obs_b, atol=2e-5)
    assert len(np.unique(obs_a[:, COL["train_loss_position"]])) > 10  # it does vary


def test_env_rows_hold_the_trainees_update_ratio():
    env = gym.make("LRSchedule-Quadratic-v1", steps_per_action=1, eval_every=4)
    env.reset(seed=0)
    trainee = env.unwrapped.trainee
    weights = [torch.cat([p.detach().flatten().clone() for p in trainee.model.parameters()])]
    for _ in range(4):
        obs, *_ = env.step(np.array([0.5], np.float32))
        weights.append(
            torch.cat([p.detach().flatten().clone() for p in trainee.model.parameters()])
        )
    # the row of step 4 measures the update of step 3 relative to the weights after it
    update = torch.linalg.vector_norm(weights[3] - weights[2])
    expected = math.log(float(update / torch.linalg.vector_norm(weights[3])))
    assert obs[-1, COL["log_update_ratio"]] == pytest.approx(expected, rel=1e-5)
    assert observation_version(env.unwrapped.signature()["features"]) == "v1"


def test_env_measures_updates_at_each_actions_last_step():
    env = gym.make("LRSchedule-Quadratic-v1", steps_per_action=4, eval_every=8)
    env.reset(seed=1)
    trainee = env.unwrapped.trainee
    weights = []

    def flat():
        return torch.cat([p.detach().flatten().clone() for p in trainee.model.parameters()])

    step = trainee.train_step

    def recording(lr):  # the weights before each optimizer step
        weights.append(flat())
        return step(lr)

    trainee.train_step = recording
    env.step(np.array([0.0], np.float32))
    obs, *_ = env.step(np.array([0.0], np.float32))
    weights.append(flat())
    # step 8 (the second action's last) measures u_7 = θ_7 - θ_6 against θ_7; steps 5-7
    # carry step 4's measurement (u_3 against θ_3)
    ratio = COL["log_update_ratio"]

    def log_ratio(t):  # weights[t] is θ_t: the weights after t steps
        return math.log(
            float(
                torch.linalg.vector_norm(weights[t] - weights[t - 1])
                / torch.linalg.vector_norm(weights[t])
            )
        )

    assert obs[-1, ratio] == pytest.approx(log_ratio(7), rel=1e-5)
    assert obs[-2, ratio] == obs[-4, ratio] == pytest.approx(log_ratio(3), rel=1e-5)
    assert obs[-5, ratio] == pytest.approx(log_ratio(3), rel=1e-5)  # step 4's own row
    assert obs[-8, ratio] == -LOG_BOUND  # step 1: nothing measured yet


def test_v1_needs_a_trainee_that_reports_update_moments():
    with pytest.raises(ValueError, match="observation='v1' needs a trainee"):
        LRScheduleEnv(ScriptedTrainee(np.ones(8)), observation="v1")
    with pytest.raises(ValueError, match="observation"):
        LRScheduleEnv("quadratic", observation="v2")
    with pytest.raises(ValueError, match="no observation version"):
        observation_version(["remaining_fraction", "mask"])
