"""Reward presets, their return bounds and the divergence reward, by value.

Every expected number is worked out by hand in a comment next to it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from envs import LRScheduleEnv
from envs.rewards import RewardInputs, divergence_reward, make_reward, return_bounds
from tests.envs.scripted import ScriptedTrainee


def inputs(train, val, evals=(), *, prev_train=1.0, best_before=1.0, remaining=0.5, total=10):
    return RewardInputs(
        train=np.array(train, dtype=float),
        prev_train=prev_train,
        val=np.array(val, dtype=float),
        evals=np.array(evals, dtype=float),
        best_before=best_before,
        remaining=remaining,
        total_steps=total,
    )


# three optimizer steps of a ten-step budget: a spike in the middle
SPIKY = inputs([0.9, 1.2, 0.9], [0.7, 0.7, 0.7], [0.7], best_before=0.8)


def test_share_is_this_steps_fraction_of_the_budget():
    assert SPIKY.share == 0.3  # 3 / 10
    assert inputs([1.0] * 4, [1.0] * 4, total=16).share == 0.25  # 4 / 16


# -- stability ------------------------------------------------------------------------------


def test_stability_default_weights():
    # rises from prev 1.0: max(0, 0.9 - 1.0) + max(0, 1.2 - 0.9) + max(0, 0.9 - 1.2) = 0.3
    # train sum 3.0, val sum 2.1: -(1 * 0.3 + 0.5 * 3.0 + 0.5 * 2.1) / 10 = -2.85 / 10
    assert make_reward("stability")(SPIKY) == pytest.approx(-0.285)
    # the first loss is compared with prev_train: rise 0.5 - 0.2 = 0.3
    # -(0.3 + 0.5 * 0.5 + 0.5 * 0.4) / 4 = -0.75 / 4
    one = inputs([0.5], [0.4], prev_train=0.2, total=4)
    assert make_reward("stability")(one) == pytest.approx(-0.1875)
    # falling losses: no rise; -(0.5 * (0.9 + 0.8 + 0.7) + 0.5 * 2.1) / 10 = -(1.2 + 1.05) / 10
    falling = inputs([0.9, 0.8, 0.7], [0.7, 0.7, 0.7])
    assert make_reward("stability")(falling) == pytest.approx(-0.225)


def test_stability_custom_weights():
    # -(2 * 0.3 + 0 * 3.0 + 1 * 2.1) / 10 = -2.7 / 10
    assert make_reward("stability", {"increase": 2, "train": 0, "val": 1})(SPIKY) == (
        pytest.approx(-0.27)
    )
    # only one weight given, the others keep their defaults: -(0 + 1.5 + 1.05) / 10
    assert make_reward("stability", {"increase": 0.0})(SPIKY) == pytest.approx(-0.255)


# -- neg_val_loss ---------------------------------------------------------------------------


def test_neg_val_loss():
    assert make_reward("neg_val_loss")(SPIKY) == pytest.approx(-0.21)  # -(3 * 0.7) / 10
    # -(0.5 + 0.25) / 100: the budget, not the step's k, is the normaliser
    assert make_reward("neg_val_loss", {})(inputs([1, 1], [0.5, 0.25], total=100)) == (
        pytest.approx(-0.0075)
    )


# -- val_improvement ------------------------------------------------------------------------


def test_val_improvement():
    reward = make_reward("val_improvement")
    assert reward(SPIKY) == pytest.approx(0.1)  # max(0, 0.8 - 0.7)
    # two evaluations in one step, the earlier better: the min counts, 0.8 - 0.6
    # (the last alone would give 0.8 - 0.7 = 0.1)
    two = inputs([0.9] * 3, [0.7] * 3, [0.6, 0.7], best_before=0.8)
    assert reward(two) == pytest.approx(0.2)
    assert reward(inputs([0.9] * 3, [0.7] * 3, [], best_before=0.8)) == 0.0  # no evaluation
    assert reward(inputs([0.9], [0.9], [0.9], best_before=0.8)) == 0.0  # max(0, 0.8 - 0.9)
    assert make_reward("val_improvement", {})(two) == pytest.approx(0.2)


# -- best_minus_val -------------------------------------------------------------------------


def test_best_minus_val_default_weights():
    reward = make_reward("best_minus_val")
    # a run that never learns: share 4/16, val 13.4, best_before 1.0, remaining 0.5
    # 0.25 * (1 * (1.0 - 13.4) + 0.1 * 0.5) = 0.25 * (-12.4 + 0.05) = 0.25 * -12.35
    stuck = inputs([13.0] * 4, [13.4] * 4, best_before=1.0, total=16)
    assert reward(stuck) == pytest.approx(-3.0875)
    # a good one: 0.25 * ((0.5 - 0.3) + 0.1 * 0.5) = 0.25 * 0.25
    good = inputs([0.3] * 4, [0.4, 0.4, 0.3, 0.3], [0.3], best_before=0.5, total=16)
    assert reward(good) == pytest.approx(0.0625)
    # at its best: the time term only, 0.3 * (0 + 0.1 * 0.5)
    assert reward(inputs([0.7] * 3, [0.7] * 3, best_before=0.7)) == pytest.approx(0.015)


def test_best_minus_val_custom_weights():
    reward = make_reward("best_minus_val", {"gamma": 2.0, "time": 0.5})
    stuck = inputs([13.0] * 4, [13.4] * 4, best_before=1.0, total=16)
    # 0.25 * (2 * (1.0 - 13.4) + 0.5 * 0.5) = 0.25 * (-24.8 + 0.25) = 0.25 * -24.55
    assert reward(stuck) == pytest.approx(-6.1375)
    good = inputs([0.3] * 4, [0.3] * 4, best_before=0.5, remaining=0.25, total=16)
    # 0.25 * (2 * 0.2 + 0.5 * 0.25) = 0.25 * 0.525
    assert reward(good) == pytest.approx(0.13125)
    # no time term, gamma at its default 1: 0.25 * (1 * 0.2 + 0 * 0.25)
    assert make_reward("best_minus_val", {"time": 0})(good) == pytest.approx(0.05)


# -- bounds and the divergence reward -------------------------------------------------------

CUSTOM = {
    "stability": {"increase": 2.0, "train": 1.0, "val": 0.5},
    "neg_val_loss": {},
    "val_improvement": {},
    "best_minus_val": {"gamma": 2.0, "time": 0.5},
}


@pytest.mark.parametrize(
    ("name", "params", "low", "high", "within"),
    [
        # low = worst per unit of loss * loss_cap (4); within: the same with losses <= loss0
        ("stability", None, -8.0, 0.0, -2.0),  # -(1 + 0.5 + 0.5) * 4
        ("stability", CUSTOM["stability"], -14.0, 0.0, -3.5),  # -(2 + 1 + 0.5) * 4
        ("stability", {"increase": 3.0}, -16.0, 0.0, -4.0),  # -(3 + 0.5 + 0.5) * 4
        ("neg_val_loss", None, -4.0, 0.0, -1.0),
        ("val_improvement", None, 0.0, 1.0, 0.0),
        ("best_minus_val", None, -4.0, 1.1, -1.0),  # [-gamma * 4, gamma + time]
        ("best_minus_val", CUSTOM["best_minus_val"], -8.0, 2.5, -2.0),  # [-2 * 4, 2 + 0.5]
    ],
)
def test_return_bounds(name, params, low, high, within):
    b = return_bounds(name, params)
    assert (b.low, b.high, b.low_within_loss0) == pytest.approx((low, high, within))


def test_return_bounds_with_another_cap_and_bad_input():
    b = return_bounds("stability", None, loss_cap=2.0)
    assert (b.low, b.high, b.low_within_loss0) == (-4.0, 0.0, -2.0)  # -(1 + 0.5 + 0.5) * 2
    with pytest.raises(ValueError, match=r"loss_cap=0.5 is invalid; expected a finite value >= 1"):
        return_bounds("stability", loss_cap=0.5)
    with pytest.raises(ValueError, match=r"unknown reward 'accuracy'"):
        return_bounds("accuracy")
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['beta'\]"):
        return_bounds("stability", {"beta": 1.0})


@pytest.mark.parametrize(
    ("name", "params", "remaining", "margin", "cap", "expected"),
    [
        ("stability", None, 0.5, 1.0, 4.0, -9.5),  # -8 - 0 - 1 * (1 + 0.5)
        ("stability", None, 0.0, 1.0, 4.0, -9.0),  # -8 - 0 - 1 * (1 + 0)
        ("stability", None, 0.5, 1.0, 1.0, -3.5),  # cap 1: -2 - 0 - 1.5
        ("stability", CUSTOM["stability"], 0.25, 2.0, 4.0, -16.5),  # -14 - 0 - 2 * 1.25
        ("neg_val_loss", None, 0.5, 1.0, 4.0, -5.5),  # -4 - 0 - 1.5
        ("neg_val_loss", None, 0.0, 0.5, 4.0, -4.5),  # -4 - 0 - 0.5 * 1
        ("val_improvement", None, 0.5, 1.0, 4.0, -2.5),  # 0 - 1 - 1.5
        ("val_improvement", None, 1.0, 1.0, 4.0, -3.0),  # 0 - 1 - 1 * 2
        ("best_minus_val", None, 0.5, 1.0, 4.0, -6.6),  # -4 - 1.1 - 1.5
        ("best_minus_val", CUSTOM["best_minus_val"], 0.0, 1.0, 4.0, -11.5),  # -8 - 2.5 - 1
        ("best_minus_val", CUSTOM["best_minus_val"], 1.0, 0.25, 4.0, -11.0),  # -8 - 2.5 - 0.5
    ],
)
def test_divergence_reward(name, params, remaining, margin, cap, expected):
    got = divergence_reward(name, params, remaining=remaining, margin=margin, loss_cap=cap)
    assert got == pytest.approx(expected)


# -- make_reward errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        (
            "accuracy",
            None,
            r"unknown reward 'accuracy'; valid: stability, neg_val_loss, val_improvement, "
            r"best_minus_val",
        ),
        (
            "stability",
            {"beta": 1.0, "alpha": 2.0},
            r"unknown parameter\(s\) \['alpha', 'beta'\] for reward 'stability'; "
            r"valid: \['increase', 'train', 'val'\]",
        ),
        (
            "neg_val_loss",
            {"gamma": 1.0},
            r"unknown parameter\(s\) \['gamma'\] for reward 'neg_val_loss'; valid: \[\]",
        ),
        (
            "best_minus_val",
            {"increase": 1.0},
            r"unknown parameter\(s\) \['increase'\].*valid: \['gamma', 'time'\]",
        ),
        (
            "best_minus_val",
            {"gamma": -1.0},
            r"reward_params\['gamma'\]=-1.0 is invalid; expected a finite weight >= 0",
        ),
        ("stability", {"val": math.nan}, r"reward_params\['val'\]=nan is invalid"),
        ("stability", {"train": math.inf}, r"reward_params\['train'\]=inf is invalid"),
        ("best_minus_val", {"time": "0.1"}, r"reward_params\['time'\]='0.1' is invalid"),
    ],
)
def test_make_reward_errors(name, params, match):
    with pytest.raises(ValueError, match=match):
        make_reward(name, params)


# -- diverging never pays -------------------------------------------------------------------

T, STEPS_PER_ACTION, EVAL_EVERY, LOSS0 = 24, 5, 6, 2.5  # env steps end at 5 10 15 20 24
SEEDS = range(20)
CONFIGS = [
    (name, params, margin)
    for name in ("stability", "neg_val_loss", "val_improvement", "best_minus_val")
    for params, margin in ((None, 1.0), (CUSTOM[name], 0.25))
]


def run(env: LRScheduleEnv, trainee: ScriptedTrainee, train, val):
    """One whole episode on the given losses; its rewards and last info."""
    trainee.train_losses, trainee.val_losses = np.asarray(train), np.asarray(val)
    env.reset(seed=0)
    rewards, terminated = [], False
    while not terminated:
        _, r, terminated, truncated, info = env.step(np.zeros(1, np.float32))
        assert not truncated
        rewards.append(r)
    return rewards, info


def random_losses(seed: int, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation losses drawn uniformly in [0, scale * loss0]."""
    rng = np.random.default_rng(seed)
    return scale * LOSS0 * rng.uniform(0, 1, T), scale * LOSS0 * rng.uniform(0, 1, T)


def adversarial_losses(scale: float = 1.0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Finished runs near the low end of each preset's bounds (losses up to scale * loss0)."""
    zigzag = scale * LOSS0 * np.tile([1e-9, 1.0], T // 2)  # a rise of ~scale every other step
    flat = np.full(T, scale * LOSS0)
    dip = flat.copy()
    dip[EVAL_EVERY - 1] = 0.0  # best 0 at the first evaluation, then back up
    return [(zigzag, flat), (flat, dip), (flat, flat)]


@pytest.mark.parametrize(("name", "params", "margin"), CONFIGS)
def test_diverging_never_pays(name, params, margin):
    trainee = ScriptedTrainee(np.ones(T), loss0=LOSS0)
    env = LRScheduleEnv(
        trainee,
        window=8,
        steps_per_action=STEPS_PER_ACTION,
        eval_every=EVAL_EVERY,
        reward=name,
        reward_params=params,
        divergence_margin=margin,
    )
    bounds = return_bounds(name, params)

    finished: dict[int, float] = {}
    for seed in SEEDS:
        rewards, info = run(env, trainee, *random_losses(seed))
        assert len(rewards) == 5 and info["step"] == T and not info["diverged"]
        finished[seed] = sum(rewards)
    within = [*finished.values()]  # losses at or below loss0
    for train, val in adversarial_losses():
        rewards, info = run(env, trainee, train, val)
        assert not info["diverged"]
        within.append(sum(rewards))
    assert min(within) >= bounds.low_within_loss0 - 1e-12
    assert max(within) <= bounds.high + 1e-12
    above = []  # finished runs whose losses go far above loss0 (but stay finite)
    for scale in (3.0, 10.0, 1e6):
        runs = [random_losses(seed, scale) for seed in range(5)] + adversarial_losses(scale)
        above += [sum(run(env, trainee, train, val)[0]) for train, val in runs]
    returns = within + above
    assert min(returns) >= bounds.low - 1e-12 and max(returns) <= bounds.high + 1e-12
    worst = min(returns)

    for seed in SEEDS:
        train, val = random_losses(seed)
        previous_penalty = math.inf
        for d in range(T, 0, -1):  # latest divergence first: earlier ones must cost more
            diverging = train.copy()
            diverging[d - 1] = math.nan  # non-finite loss (finite=False) at optimizer step d
            rewards, info = run(env, trainee, diverging, val)
            assert info["diverged"] and info["step"] == d
            assert len(rewards) == math.ceil(d / STEPS_PER_ACTION)
            penalty = divergence_reward(name, params, remaining=(T - d) / T, margin=margin)
            assert rewards[-1] == penalty
            assert penalty < previous_penalty
            previous_penalty = penalty
            ret = sum(rewards)
            assert ret < worst, (seed, d, ret, worst)
            assert ret < bounds.low
            assert ret < finished[seed]  # same losses up to step d, finished instead


def test_the_adversarial_runs_reach_the_expected_returns():
    """Hand-computed returns of the adversarial finished runs (T = 24, k = 5 5 5 5 4)."""
    trainee = ScriptedTrainee(np.ones(T), loss0=LOSS0)
    env_kw = dict(window=8, steps_per_action=STEPS_PER_ACTION, eval_every=EVAL_EVERY)
    (zigzag, flat_val), (flat, dip), _ = adversarial_losses()
    # stability on the zigzag: normalised train 1e-9, 1, 1e-9, 1, ... (12 of each), val 1
    # rises: 12 * (1 - 1e-9); train sum 12 * (1 + 1e-9); val sum 24
    # -(12 + 0.5 * 12 + 0.5 * 24) / 24 = -30 / 24 = -1.25 (up to ~1e-9)
    env = LRScheduleEnv(trainee, reward="stability", **env_kw)
    assert sum(run(env, trainee, zigzag, flat_val)[0]) == pytest.approx(-1.25, abs=1e-8)
    # best_minus_val on the dip (train at loss0; validation 0 at the t = 6 evaluation, loss0
    # at t = 12, 18, 24): env steps end at t = 5 10 15 20 24 with val in force 1 0 1 1 1,
    # best_before 1 1 0 0 0 and remaining 19/24 14/24 9/24 4/24 0:
    #   (5/24)[(1 - 1) + 0.1 * 19/24] + (5/24)[(1 - 0) + 0.1 * 14/24]
    #   + (5/24)[(0 - 1) + 0.1 * 9/24] + (5/24)[(0 - 1) + 0.1 * 4/24] + (4/24)[(0 - 1) + 0]
    #   = (5/24)(-1 + 0.1 * 46/24) - 4/24 = -0.168402... - 0.166666... = -0.335069...
    env = LRScheduleEnv(trainee, reward="best_minus_val", **env_kw)
    expected = (5 / 24) * (-1 + 0.1 * 46 / 24) - 4 / 24
    assert sum(run(env, trainee, flat, dip)[0]) == pytest.approx(expected)
    assert expected == pytest.approx(-0.3350694444)


def test_non_finite_validation_loss_diverges():
    # stability defaults; validation NaN at the evaluation after step 12 (env step 3 of 5,
    # which ends early at t = 12): remaining 12/24 -> -8 - 0 - 1 * (1 + 0.5) = -9.5
    trainee = ScriptedTrainee(np.full(T, LOSS0), np.full(T, LOSS0), loss0=LOSS0)
    env = LRScheduleEnv(trainee, window=8, steps_per_action=STEPS_PER_ACTION, eval_every=6)
    val = np.full(T, LOSS0)
    val[11] = math.nan
    rewards, info = run(env, trainee, np.full(T, LOSS0), val)
    assert info["diverged"] and info["step"] == 12 and len(rewards) == 3
    assert rewards[-1] == -9.5
    # the two finished env steps each cost (5/24)(0 + 0.5 * 1 + 0.5 * 1) = 5/24
    assert rewards[:2] == pytest.approx([-5 / 24, -5 / 24])
