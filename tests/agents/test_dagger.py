"""DAgger from the privileged expert: labels, reproducibility, learning."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents.bc import BCConfig, action_error
from agents.dagger import DAggerConfig, ExpertActor, relabel, run_dagger
from agents.policy import PolicyConfig, make_policy
from envs.rollout import run_episode
from experts.privileged import PrivilegedSchedulePolicy
from experts.schedules import make_schedule

QUAD = "LRSchedule-Quadratic-v0"


def task_env() -> gym.Env:
    return gym.make(QUAD, total_steps=64, base_lr=0.01, base_lr_spread=8.0)


class Doubling:
    """A hand-built policy: always twice the base LR."""

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        return np.array([math.log(2.0)], np.float32), state


def test_the_states_the_policy_visited_get_the_experts_action_there():
    env = task_env()
    expert = PrivilegedSchedulePolicy(make_schedule("cosine"), env.action_space, 0.01)
    episode = run_episode(env, Doubling(), seed=7)
    drawn = episode.base_lr
    assert np.allclose(episode.lrs, 2 * drawn)  # the policy's states, not the expert's
    labelled = relabel(episode, expert)
    assert np.array_equal(labelled.obs, episode.observations)
    for obs, label in zip(episode.observations[:-1], labelled.acts, strict=True):
        progress = 1.0 - float(obs[-1, 0])
        assert label[0] == pytest.approx(
            math.log(make_schedule("cosine")(progress) * 0.01 / drawn), abs=1e-6
        )
    # the expert acting itself follows cosine at the reference LR, whatever was drawn
    own = run_episode(env, ExpertActor(expert, env), seed=7)
    assert own.base_lr == drawn and own.lrs[0] == pytest.approx(0.01)


def fresh_policy(env: gym.Env):
    return make_policy(env.observation_space, env.action_space, PolicyConfig(), seed=0)


def small() -> DAggerConfig:
    return DAggerConfig(rounds=1, bc=BCConfig(epochs=15, batch_size=16, critic_epochs=0))


def test_a_dagger_round_is_reproducible_from_its_seeds():
    env = task_env()
    expert = PrivilegedSchedulePolicy(make_schedule("cosine"), env.action_space, 0.01)
    runs = []
    for _ in range(2):
        policy = fresh_policy(env)
        records = run_dagger(
            policy,
            env,
            expert,
            [[0, 1], [2, 3]],
            small(),
            rng=np.random.default_rng(5),
            validation_seeds=[500],
        )
        runs.append((records, policy.state_dict()))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(runs[0][1][k], runs[1][1][k]) for k in runs[0][1])


def test_dagger_learns_the_expert_far_better_than_an_untrained_policy():
    env = task_env()
    expert = PrivilegedSchedulePolicy(make_schedule("cosine"), env.action_space, 0.01)
    held_out = [relabel(run_episode(env, ExpertActor(expert, env), s), expert) for s in (500, 501)]
    policy = fresh_policy(env)
    untrained = action_error(policy, held_out)
    records = run_dagger(
        policy,
        env,
        expert,
        [[0, 1, 2], [3, 4, 5]],
        small(),
        rng=np.random.default_rng(0),
        validation_seeds=[500, 501],
    )
    assert [r["round"] for r in records] == [0, 1]
    assert records[1]["transitions"] == 2 * records[0]["transitions"]  # aggregated
    assert records[-1]["action_error_validation"] < 0.5 * untrained


def test_a_mixed_round_needs_one_expert_per_episode():
    from agents.dagger import dagger_round

    env = task_env()
    expert = PrivilegedSchedulePolicy(make_schedule("cosine"), env.action_space, 0.01)
    episodes = [run_episode(env, Doubling(), seed=s) for s in (1, 2)]
    with pytest.raises(ValueError, match="1 experts for 2 episodes; give one expert, or one per"):
        dagger_round(
            0, fresh_policy(env), episodes, [], [expert], small(), rng=np.random.default_rng(0)
        )
