"""The privileged critic: the task reaches the critic, never the actor; the actor is what ships."""

from __future__ import annotations

import json
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents.policy import PolicyConfig, load_policy, make_policy, read_policy_file
from agents.ppo import FinetuneConfig, FinetunedPPO
from agents.privileged import (
    N_PRIVILEGED,
    PRIVILEGED_FEATURES,
    TASK_TRAINEES,
    VecPrivileged,
    augmented_space,
    deployable,
    make_privileged_policy,
    task_features,
)
from envs.vec_env import make_batched_vec_env
from experiments.ppo_job import finetune
from tests.conftest import PPO_ENV as ENV
from tests.conftest import SMALL_PPO as SMALL

pytestmark = pytest.mark.usefixtures("one_thread")
CONFIG = PolicyConfig(
    features_dim=16, patch_size=8, d_model=16, n_layers=1, pi_hidden=(16,), vf_hidden=(16,)
)


def spaces_of(env_id: str = ENV):
    env = gym.make(env_id)
    return env.observation_space, env.action_space


def augmented_obs(space, n: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    obs = rng.uniform(-1, 1, (n, *space.shape)).astype(np.float32)
    obs[..., 0] = rng.uniform(0, 1, (n, space.shape[0]))  # remaining fraction, in [0, 1]
    obs[..., -1] = 1.0  # the mask column: every row valid
    task = rng.normal(size=(n, 1, N_PRIVILEGED)).astype(np.float32)
    return torch.from_numpy(np.concatenate([obs, np.repeat(task, space.shape[0], 1)], -1))


def test_task_features_by_hand_and_bad_values_named():
    f = task_features(1e-3, 4e-3, "mlp")
    assert f.shape == (N_PRIVILEGED,) == (len(PRIVILEGED_FEATURES),)
    assert f[0] == pytest.approx(math.log(4.0))
    assert f[1:].tolist() == [1.0 if t == "mlp" else 0.0 for t in TASK_TRAINEES]
    with pytest.raises(ValueError, match="trainee 'cnn' is invalid; valid: quadratic, mlp"):
        task_features(1e-3, 4e-3, "cnn")
    with pytest.raises(ValueError, match=r"base_lr=0\.0"):
        task_features(0.0, 4e-3, "mlp")


def test_the_privileged_inputs_have_no_path_to_the_actor():
    obs_space, act_space = spaces_of()
    policy = make_privileged_policy(obs_space, act_space, CONFIG, seed=1)
    with torch.no_grad():  # a critic that has learnt to use the task
        policy.vf_features_extractor.task.weight.normal_()
    obs = augmented_obs(obs_space, 4, seed=0).requires_grad_(True)
    n = obs_space.shape[1]
    mean = policy.get_distribution(obs).distribution.mean
    (grad,) = torch.autograd.grad(mean.sum(), obs)
    assert torch.equal(grad[..., n:], torch.zeros_like(grad[..., n:]))  # exactly zero
    assert grad[..., :n].abs().sum() > 0  # the actor does read the signals
    (grad,) = torch.autograd.grad(policy.predict_values(obs).sum(), obs)
    assert grad[:, -1, n:].abs().sum() > 0  # the critic reads the task


def test_it_starts_as_the_plain_policy_and_ships_the_actor():
    obs_space, act_space = spaces_of()
    plain = make_policy(obs_space, act_space, CONFIG, seed=3)
    policy = make_privileged_policy(obs_space, act_space, CONFIG, state_dict=plain.state_dict())
    obs = augmented_obs(obs_space, 5, seed=1)
    signals = obs[..., : obs_space.shape[1]]
    with torch.no_grad():
        assert torch.equal(
            policy.get_distribution(obs).distribution.mean,
            plain.get_distribution(signals).distribution.mean,
        )
        assert torch.equal(policy.predict_values(obs), plain.predict_values(signals))
    shipped = deployable(policy, CONFIG)
    assert shipped.observation_space == obs_space
    for k, v in plain.state_dict().items():
        assert torch.equal(shipped.state_dict()[k], v), k
    with pytest.raises(ValueError, match="not a plain policy's state"):
        make_privileged_policy(obs_space, act_space, CONFIG, state_dict=policy.state_dict())


def test_vec_privileged_appends_each_episodes_task_and_the_ended_ones_to_its_terminal_obs():
    ref = 0.05
    inner = make_batched_vec_env(ENV, 2, seed=7, base_lr_spread=8.0, total_steps=64)
    vec = VecPrivileged(inner, ref)
    n = inner.observation_space.shape[1]
    assert vec.observation_space == augmented_space(inner.observation_space)

    def expected() -> np.ndarray:
        return np.stack(
            [task_features(e.base_lr, ref, "quadratic") for e in inner.get_attr("unwrapped")]
        )

    obs = vec.reset()
    task = expected()
    assert np.array_equal(obs[..., n:], np.repeat(task[:, None], obs.shape[1], 1))
    drawn = {tuple(task[:, 0])}
    for _ in range(2 * 64 // 2 + 1):  # past the first automatic resets
        obs, _, dones, infos = vec.step(np.zeros((2, 1), np.float32))
        for k in np.flatnonzero(dones):
            assert np.array_equal(
                infos[k]["terminal_observation"][..., n:], np.repeat(task[k][None], obs.shape[1], 0)
            )
        task = expected()
        drawn.add(tuple(task[:, 0]))
        assert np.array_equal(obs[..., n:], np.repeat(task[:, None], obs.shape[1], 1))
    assert len(drawn) >= 2 and all(abs(x) <= math.log(8.0) for d in drawn for x in d)
    vec.close()


def test_ppo_with_a_privileged_critic_trains_the_critic_on_the_task_and_saves_the_actor(
    bc_file, tmp_path
):
    metrics = finetune(
        bc_file,
        tmp_path,
        total_timesteps=128,
        n_envs=2,
        seed=0,
        config=FinetuneConfig(**SMALL, critic_warmup_rollouts=1),
        options=None,
        eval_every=1,
        eval_episodes=1,
        checkpoint_every=1,
        report_episodes=1,
        progress=False,
        device="cpu",
        reference_lr=0.05,
    )
    assert metrics["privileged_critic"]["reference_lr"] == 0.05
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["privileged_critic"]["features"] == list(PRIVILEGED_FEATURES)
    env = gym.make(ENV)
    policy = load_policy(tmp_path / "policies" / "ppo_final.pt", env)  # a plain policy file
    assert policy.observation_space == env.observation_space
    assert read_policy_file(tmp_path / "policies" / "ppo_best.pt").observation_space == (
        env.observation_space
    )
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["policy"]
    assert state["vf_features_extractor.task.weight"].abs().sum() > 0  # started at zero


def test_finetuned_ppo_refuses_an_env_of_other_spaces(bc_file):
    vec = make_batched_vec_env(ENV, 1, seed=0, window=32)  # the policy's window is 64
    with pytest.raises(ValueError, match="privileged task columns"):
        FinetunedPPO(vec, read_policy_file(bc_file), device="cpu")
