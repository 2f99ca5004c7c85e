"""Any object implementing the Trainee protocol can be trained through LRScheduleEnv."""

from __future__ import annotations

import numpy as np
import pytest

from envs import FEATURES, LRScheduleEnv
from tests.envs.scripted import ScriptedTrainee
from trainees import TorchTrainee, Trainee

LOSS0 = 2.0
TRAIN = [1.8, 2.0, 1.2, 1.4, 0.8, 0.6]  # normalised by loss0: 0.9 1.0 0.6 0.7 0.4 0.3
# read only after steps 3 and 6 (eval_every=3): the 99s prove no other step is evaluated
VAL = [99.0, 99.0, 1.5, 99.0, 99.0, 1.0]  # normalised: step 3 -> 0.75, step 6 -> 0.5


def col(name: str) -> int:
    return FEATURES.index(name)


def scripted_env(**kw) -> tuple[LRScheduleEnv, ScriptedTrainee]:
    trainee = ScriptedTrainee(TRAIN, VAL, loss0=LOSS0, base_lr=0.01)
    return LRScheduleEnv(trainee, window=8, steps_per_action=2, eval_every=3, **kw), trainee


def test_scripted_trainee_satisfies_the_protocol_only():
    trainee = ScriptedTrainee(TRAIN, VAL, loss0=LOSS0)
    assert isinstance(trainee, Trainee)
    assert not isinstance(trainee, TorchTrainee)
    env, _ = scripted_env()
    assert env.trainee_name == "ScriptedTrainee"


# per env step (k = 2 optimizer steps, T = 6), losses normalised by loss0 = 2:
#   step 1 (t = 1, 2): train 0.9 1.0 (prev 1.0), val in force 1 1 (loss0, no evaluation yet)
#   step 2 (t = 3, 4): train 0.6 0.7 (prev 1.0), val 0.75 0.75 (evaluated at t = 3)
#   step 3 (t = 5, 6): train 0.4 0.3 (prev 0.7), val 0.75 0.5 (evaluated at t = 6)
EXPECTED_REWARDS = {
    # -(1/6)[rises + 0.5 train + 0.5 val]:
    #   step 1: rises 0 + 0.1, train 1.9, val 2.0   -> -(0.1 + 0.95 + 1.0)/6 = -2.05/6
    #   step 2: rises 0 + 0.1, train 1.3, val 1.5   -> -(0.1 + 0.65 + 0.75)/6 = -1.5/6
    #   step 3: rises 0 + 0,   train 0.7, val 1.25  -> -(0.35 + 0.625)/6 = -0.975/6
    "stability": [-2.05 / 6, -1.5 / 6, -0.975 / 6],
    # -(1/6) sum val: -(1 + 1)/6, -(0.75 + 0.75)/6, -(0.75 + 0.5)/6
    "neg_val_loss": [-2.0 / 6, -1.5 / 6, -1.25 / 6],
    # max(0, best_before - eval): no eval; 1 - 0.75; 0.75 - 0.5
    "val_improvement": [0.0, 0.25, 0.25],
    # (2/6)[(best_before - val_end) + 0.1 remaining]:
    #   (1/3)[(1 - 1) + 0.1 * 4/6], (1/3)[(1 - 0.75) + 0.1 * 2/6], (1/3)[(0.75 - 0.5) + 0]
    "best_minus_val": [0.4 / 18, (0.25 + 0.2 / 6) / 3, 0.25 / 3],
}
EXPECTED_RETURNS = {
    "stability": -0.7541666666666667,  # -(2.05 + 1.5 + 0.975)/6 = -4.525/6
    "neg_val_loss": -0.7916666666666666,  # -(2 + 1.5 + 1.25)/6 = -4.75/6
    "val_improvement": 0.5,  # telescopes to 1 - best = 1 - 0.5
    "best_minus_val": 0.2,  # (1/3)[0.4/6 + 0.25 + 0.2/6 + 0.25] = (1/3) * 0.6
}


@pytest.mark.parametrize("reward", sorted(EXPECTED_RETURNS))
def test_whole_episode_of_a_protocol_only_trainee(reward):
    env, trainee = scripted_env(reward=reward)
    obs, info = env.reset(seed=0)
    assert info["val_loss"] == LOSS0 and info["best_val_loss"] == LOSS0 and info["step"] == 0
    assert info["lr"] == 0.01
    rewards, infos, terminated = [], [], False
    while not terminated:
        obs, r, terminated, truncated, info = env.step(np.zeros(1, np.float32))
        assert not truncated and not info["diverged"]
        rewards.append(r)
        infos.append(info)
    assert [i["step"] for i in infos] == [2, 4, 6]  # 3 env steps of 2 optimizer steps
    assert trainee.lrs == [0.01] * 6  # action 0: base_lr at every optimizer step
    assert len(trainee.seeds) == 1

    assert rewards == pytest.approx(EXPECTED_REWARDS[reward], abs=1e-12)
    assert sum(rewards) == pytest.approx(EXPECTED_RETURNS[reward], abs=1e-12)

    final = infos[-1]
    assert final["best_val_loss"] == 1.0  # min(loss0 = 2, 1.5, 1.0)
    assert final["val_loss"] == 1.0 and final["train_loss"] == 0.6
    assert final["final_train_loss"] == pytest.approx(0.7)  # mean(0.8, 0.6): the last env step
    assert [i["val_loss"] for i in infos] == [2.0, 1.5, 1.0]

    # the window holds the reset row (step 0) and the 6 optimizer steps, oldest first
    assert obs.shape == (8, len(FEATURES))
    np.testing.assert_array_equal(obs[:, col("mask")], [0, 1, 1, 1, 1, 1, 1, 1])
    rows = obs[2:]
    expected_train = np.log(np.array(TRAIN) / LOSS0)  # log(0.9), log(1.0), ..., log(0.3)
    expected_val = np.log([1.0, 1.0, 0.75, 0.75, 0.75, 0.5])  # in force after each step
    np.testing.assert_allclose(rows[:, col("log_train_loss")], expected_train, rtol=1e-6)
    np.testing.assert_allclose(rows[:, col("log_val_loss")], expected_val, rtol=1e-6, atol=1e-7)
    # evaluated at steps 0, 3 and 6: staleness (t - last eval) / 3
    np.testing.assert_allclose(
        rows[:, col("val_staleness")], [1 / 3, 2 / 3, 0, 1 / 3, 2 / 3, 0], rtol=1e-6
    )
    np.testing.assert_allclose(rows[:, col("remaining_fraction")], np.arange(5, -1, -1) / 6)
    grad_cols = [col(f) for f in FEATURES if f.startswith("log_grad_norm_")]
    # norms t * (1, 2, 3, 4) over the first step's (1, 2, 3, 4): log(t) in every bucket
    np.testing.assert_allclose(
        rows[:, grad_cols], np.log(np.arange(1, 7))[:, None].repeat(4, 1), rtol=1e-6
    )
    np.testing.assert_array_equal(rows[:, col("log_lr_multiplier")], 0.0)
    np.testing.assert_array_equal(obs[1], [1, 0, 0, 0, 0, 0, 0, 0, 0, 1])  # the reset row

    # reset starts the same scripted run again
    env.reset(seed=0)
    again = [env.step(np.zeros(1, np.float32))[1] for _ in range(3)]
    assert again == rewards
