import math

import gymnasium as gym
import numpy as np
import pytest

from envs.rollout import run_episode
from experts.demos import load_demonstrations, save_demonstrations, to_trajectory
from experts.policy import SchedulePolicy
from experts.schedules import Cosine, LinearWarmupDecay


@pytest.mark.parametrize("schedule", [Cosine(warmup=0.1), LinearWarmupDecay(warmup=0.2)])
def test_expert_reproduces_its_schedule_through_the_env(schedule):
    env = gym.make("LRSchedule-Quadratic-v0", total_steps=96, steps_per_action=8)
    episode = run_episode(env, SchedulePolicy(schedule, env.action_space), seed=0)
    base = env.unwrapped.trainee.base_lr
    progress = (episode.steps - 8) / 96  # the progress at which each action was chosen
    expected = [base * schedule(p) for p in progress]
    np.testing.assert_allclose(episode.lrs, expected, rtol=1e-5)
    assert len(episode.lrs) == 12 and episode.observations.shape[0] == 13


def test_discrete_expert_tracks_schedule_with_factors():
    factors = (0.8, 1.0, 1.25)
    env = gym.make(
        "LRSchedule-Quadratic-v0",
        action_type="discrete",
        factors=factors,
        total_steps=160,
        steps_per_action=8,
    )
    schedule = Cosine(floor=0.3)
    episode = run_episode(env, SchedulePolicy(schedule, env.action_space, factors), seed=0)
    base = env.unwrapped.trainee.base_lr
    progress = (episode.steps - 8) / 160
    gap = np.abs(np.log(episode.lrs / (base * np.array([schedule(p) for p in progress]))))
    assert gap.max() <= math.log(1.25) / 2 + 1e-9  # within half a factor step all along


def test_policy_batches_and_bounds():
    env = gym.make("LRSchedule-Quadratic-v0")
    policy = SchedulePolicy(LinearWarmupDecay(start=1e-6), env.action_space)
    obs, _ = env.reset(seed=0)
    single, _ = policy.predict(obs)
    batch, _ = policy.predict(np.stack([obs, obs]))
    assert single.shape == (1,) and batch.shape == (2, 1)
    assert single[0] == pytest.approx(math.log(1e-3))  # 1e-6 is clipped to the env's bound
    with pytest.raises(ValueError, match="needs its 3 factors"):
        SchedulePolicy(LinearWarmupDecay(), gym.spaces.Discrete(3))


def test_demonstrations_round_trip(tmp_path):
    env = gym.make("LRSchedule-Quadratic-v0", total_steps=32)
    schedule = Cosine()
    eps = [run_episode(env, SchedulePolicy(schedule, env.action_space), s) for s in (0, 1)]
    save_demonstrations(
        tmp_path / "d",
        eps,
        expert=schedule,
        env_id="LRSchedule-Quadratic-v0",
        env_kwargs={"total_steps": 32},
    )
    trajs, meta = load_demonstrations(tmp_path / "d")
    assert meta["expert"] == "cosine" and meta["expert_params"]["floor"] == 0.1
    assert meta["seeds"] == [0, 1] and len(trajs) == 2
    np.testing.assert_array_equal(trajs[1].obs, to_trajectory(eps[1]).obs)
    np.testing.assert_array_equal(trajs[1].acts, to_trajectory(eps[1]).acts)
    np.testing.assert_array_equal(trajs[0].rews, to_trajectory(eps[0]).rews)


def test_schedule_policy_drives_imitations_rollout_utilities():
    from imitation.data import rollout
    from stable_baselines3.common.vec_env import DummyVecEnv

    venv = DummyVecEnv([lambda: gym.make("LRSchedule-Quadratic-v0", total_steps=40)])
    schedule = Cosine()
    policy = SchedulePolicy(schedule, venv.action_space)
    trajs = rollout.rollout(
        policy,
        venv,
        rollout.make_min_episodes(1),
        rng=np.random.default_rng(0),
        unwrap=False,
        exclude_infos=False,
    )
    assert len(trajs[0].acts) == 5  # 40 steps / 8 per action
    lrs = np.array([info["lr"] for info in trajs[0].infos])
    base = venv.envs[0].unwrapped.trainee.base_lr
    expected = [base * schedule(p) for p in np.arange(5) * 8 / 40]
    np.testing.assert_allclose(lrs, expected, rtol=1e-5)
