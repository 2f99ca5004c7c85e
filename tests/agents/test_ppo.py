"""PPO fine-tuning from a BC policy file: safeguards, checkpoints and the script."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.policies import ActorCriticPolicy

from agents.checkpoint import load_checkpoint, save_checkpoint
from agents.policy import load_policy, read_policy_file
from agents.ppo import FinetuneConfig, FinetunedPPO
from envs import make_batched_vec_env
from envs.vec_env import EpisodeSeeds
from experiments import ppo_job as ppo_module

ENV = "LRSchedule-Quadratic-v0"


SUMMARIZE = ppo_module.summarize_episodes


ROOT = Path(__file__).resolve().parents[2]


# small rollouts: 2 envs x 32 steps, one minibatch, so a test takes seconds
SMALL = dict(n_steps=32, batch_size=64, n_epochs=2)


def sample_observations(n_episodes: int = 2) -> np.ndarray:
    """Observations from real episodes at a constant LR."""
    env = gym.make(ENV)
    out = []
    for seed in range(n_episodes):
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            out.append(obs)
            obs, _, done, _, _ = env.step(np.zeros(1, dtype=np.float32))
    return np.array(out)


def build(bc_file: Path, **config) -> FinetunedPPO:
    vec = make_batched_vec_env(ENV, 2, seed=100_000)
    return FinetunedPPO(
        vec, read_policy_file(bc_file), FinetuneConfig(**SMALL | config), device="cpu"
    )


def test_starts_as_the_bc_policy_with_log_std_reset(bc_file):
    model = build(bc_file, log_std=-0.5)
    bc = load_policy(bc_file, device="cpu")
    obs = sample_observations(1)
    ppo_actions, _ = model.policy.predict(obs, deterministic=True)
    bc_actions, _ = bc.predict(obs, deterministic=True)
    np.testing.assert_array_equal(ppo_actions, bc_actions)
    assert model.policy.log_std.tolist() == [-0.5] and bc.log_std.tolist() == [-2.0]
    assert model.gamma == 0.99
    assert float(model.kl_to_bc(torch.as_tensor(obs[:8]))) == pytest.approx(
        # KL(N(m, s_bc) || N(m, s)) with equal means: log(s/s_bc) + s_bc^2 / (2 s^2) - 1/2
        1.5 + np.exp(-4.0) / (2 * np.exp(-1.0)) - 0.5,
        rel=1e-5,
    )


def test_critic_warmup_leaves_the_actor_bit_identical(bc_file):
    model = build(bc_file, critic_warmup_rollouts=2, learning_rate=1e-3)
    actor = [p.detach().clone() for p in model.actor_params]
    critic = [p.detach().clone() for p in model.critic_params]
    model.learn(128)  # two rollouts of 2 x 32 steps: both in the warm-up
    assert model.rollouts_done == 2
    assert all(torch.equal(a, p) for a, p in zip(actor, model.actor_params, strict=True))
    assert not all(torch.equal(c, p) for c, p in zip(critic, model.critic_params, strict=True))
    model.learn(64, reset_num_timesteps=False)  # the third rollout trains the actor too
    assert not all(torch.equal(a, p) for a, p in zip(actor, model.actor_params, strict=True))


def action_drift(model: FinetunedPPO, bc_file: Path, obs: np.ndarray) -> float:
    """Largest |PPO action - BC action| (log LR multiplier) over ``obs``."""
    bc = load_policy(bc_file, device="cpu")
    a, _ = model.policy.predict(obs, deterministic=True)
    b, _ = bc.predict(obs, deterministic=True)
    return float(np.max(np.abs(a - b)))


def test_a_large_kl_coefficient_keeps_actions_near_bc(bc_file):
    obs = sample_observations(2)
    drifts = {}
    for kl_coef in (0.0, 100.0):
        # an aggressive PPO (large steps, no early stop) that would wander off without the KL
        model = build(
            bc_file,
            kl_coef=kl_coef,
            kl_final=1.0,
            critic_warmup_rollouts=0,
            learning_rate=3e-3,
            target_kl=None,
            clip_range=0.3,
            n_epochs=8,
        )
        model.learn(256)
        drifts[kl_coef] = action_drift(model, bc_file, obs)
    assert drifts[100.0] < 0.05, drifts
    assert drifts[0.0] > 3 * drifts[100.0], drifts


def test_checkpoint_round_trip_restores_policy_optimizer_rng_and_counters(bc_file, tmp_path):
    model = build(bc_file, critic_warmup_rollouts=0)
    model.learn(128)
    save_checkpoint(model, tmp_path / "c.pt", {"history": [], "best_return": -1.0})
    draws = torch.rand(3), np.random.rand(3)
    other = build(bc_file)
    extra = load_checkpoint(other, tmp_path / "c.pt")
    assert extra == {"history": [], "best_return": -1.0}
    counters = ("num_timesteps", "rollouts_done", "_n_updates", "train_log")
    assert [getattr(other, c) for c in counters] == [getattr(model, c) for c in counters]
    assert (other.num_timesteps, other.rollouts_done, other._n_updates) == (128, 2, 4)
    assert torch.equal(torch.rand(3), draws[0]) and np.array_equal(np.random.rand(3), draws[1])
    for a, b in zip(model.policy.parameters(), other.policy.parameters(), strict=True):
        assert torch.equal(a, b)
    mine, theirs = model.policy.optimizer.state_dict(), other.policy.optimizer.state_dict()
    assert mine["param_groups"] == theirs["param_groups"]
    assert mine["state"].keys() == theirs["state"].keys() and len(mine["state"]) > 0
    for key, state in mine["state"].items():
        for name, value in state.items():  # Adam's step, exp_avg, exp_avg_sq
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(theirs["state"][key][name]))


def test_without_safeguards_is_sb3_ppo_parameter_for_parameter(bc_file):
    """--no-safeguards is plain PPO: one rollout and update equal SB3 2.2's, bit for bit."""
    saved = read_policy_file(bc_file)
    config = FinetuneConfig(**SMALL, learning_rate=1e-3).without_safeguards()
    plain = PPO(
        ActorCriticPolicy,
        make_batched_vec_env(ENV, 2, seed=5),
        learning_rate=1e-3,
        n_steps=32,
        batch_size=64,
        n_epochs=2,
        gamma=saved.gamma,
        gae_lambda=config.gae_lambda,
        clip_range=config.clip_range,
        ent_coef=0.0,
        vf_coef=config.vf_coef,
        max_grad_norm=config.max_grad_norm,
        target_kl=config.target_kl,
        policy_kwargs=saved.config.policy_kwargs(),
        seed=3,
        device="cpu",
    )
    plain.policy.load_state_dict(saved.state_dict)
    plain.learn(64)  # one rollout of 2 x 32 steps, then one update
    # SB3 re-seeded its env to 3 + k; FinetunedPPO leaves the env to its builder
    ours = FinetunedPPO(make_batched_vec_env(ENV, 2, seed=3), saved, config, seed=3, device="cpu")
    ours.learn(64)
    assert ours.rollouts_done == 1 and ours._n_updates == plain._n_updates == 2
    names = [n for n, _ in plain.policy.named_parameters()]
    assert names == [n for n, _ in ours.policy.named_parameters()]
    moved = 0
    for (name, a), b in zip(plain.policy.named_parameters(), ours.policy.parameters(), strict=True):
        assert torch.equal(a, b), name
        moved += not torch.equal(a, saved.state_dict[name])
    assert moved > 0  # the update changed the policy: the equality is not of two no-ops


def test_the_ablation_differs_from_the_safeguarded_run_only_by_its_switches():
    base = FinetuneConfig()
    plain = base.without_safeguards()
    assert (plain.log_std, plain.critic_warmup_rollouts, plain.kl_coef, plain.separate_clip) == (
        None,
        0,
        0.0,
        False,
    )
    same = {"log_std", "critic_warmup_rollouts", "kl_coef", "separate_clip"}
    for field_ in dataclasses.fields(base):
        if field_.name not in same:
            assert getattr(plain, field_.name) == getattr(base, field_.name), field_.name


def test_episode_seeds_hand_out_a_block_in_turn_and_resume_from_their_state():
    block = range(100, 107)
    s = EpisodeSeeds(block, 2)
    assert [s.next(0), s.next(1), s.next(0), s.next(0)] == [100, 101, 102, 104]
    other = EpisodeSeeds(block, 2)
    other.load_state_dict(s.state_dict())
    assert [other.next(1), other.next(0)] == [103, 106]
    assert other.next(1) == 105
    with pytest.raises(RuntimeError, match=r"block 100\.\.106 is spent"):
        other.next(1)  # its fourth episode would be seed 107
    with pytest.raises(ValueError, match="stored n_envs 2, this job's 3"):
        EpisodeSeeds(block, 3).load_state_dict(s.state_dict())
