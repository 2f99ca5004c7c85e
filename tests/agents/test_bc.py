import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.policies import ActorCriticPolicy

from agents.bc import BCConfig, action_error, discounted_returns, fit_critic, train_actor
from agents.policy import PolicyConfig, load_policy, make_policy, save_policy
from experts.demos import run_episode
from experts.policy import SchedulePolicy
from experts.schedules import Cosine

SMALL = PolicyConfig(features_dim=32, patch_size=4, d_model=32)


@pytest.fixture(scope="module")
def tiny():
    env = gym.make("LRSchedule-Quadratic-v0", window=16, total_steps=64, steps_per_action=8)
    expert = SchedulePolicy(Cosine(floor=0.05), env.action_space)
    trajs = [run_episode(env, expert, s).trajectory for s in range(4)]
    return env, trajs


def test_discounted_returns():
    np.testing.assert_allclose(discounted_returns(np.array([1.0, 2.0, 3.0]), 0.5), [2.75, 3.5, 3.0])


def test_bc_reduces_action_error_well_below_untrained(tiny):
    env, trajs = tiny
    torch.manual_seed(0)
    policy = make_policy(env.observation_space, env.action_space, SMALL)
    before = action_error(policy, trajs)
    train_actor(policy, trajs, BCConfig(epochs=150, batch_size=16), rng=np.random.default_rng(0),
                progress_bar=False)  # fmt: skip
    after = action_error(policy, trajs)
    assert after < 0.2 * before and after < 0.25, (before, after)


def test_critic_fit_reduces_value_error(tiny):
    env, trajs = tiny
    torch.manual_seed(0)
    policy = make_policy(env.observation_space, env.action_space, SMALL)
    cfg = BCConfig(critic_epochs=0, gamma=0.9)
    untrained = fit_critic(policy, trajs, cfg, rng=np.random.default_rng(0))
    trained = fit_critic(policy, trajs, BCConfig(critic_epochs=100, gamma=0.9),
                         rng=np.random.default_rng(0))  # fmt: skip
    assert trained < 0.1 * untrained


def test_saved_policy_reloads_and_predicts_identically(tiny, tmp_path):
    env, trajs = tiny
    torch.manual_seed(1)
    policy = make_policy(env.observation_space, env.action_space, SMALL)
    path = save_policy(policy, tmp_path / "p.pt", SMALL)
    restored = load_policy(path, device="cpu")
    assert isinstance(restored, ActorCriticPolicy)
    obs = np.stack([t.obs[3] for t in trajs])
    a, _ = policy.predict(obs, deterministic=True)
    b, _ = restored.predict(obs, deterministic=True)
    np.testing.assert_array_equal(a, b)
    torch.testing.assert_close(
        policy.predict_values(torch.as_tensor(obs)), restored.predict_values(torch.as_tensor(obs))
    )
    path.write_bytes(b"not a policy")
    with pytest.raises(ValueError, match="is not a saved lrschedule-gym policy"):
        load_policy(path)


def test_same_network_goes_to_ppo(tiny):
    env, _ = tiny
    policy = make_policy(env.observation_space, env.action_space, SMALL)
    ppo = PPO(ActorCriticPolicy, env, policy_kwargs=SMALL.policy_kwargs(), n_steps=8, device="cpu")
    ppo.policy.load_state_dict(policy.state_dict())  # identical architecture and names
    assert ppo.policy.pi_features_extractor is not ppo.policy.vf_features_extractor
