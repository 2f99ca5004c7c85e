import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.policies import ActorCriticPolicy

from agents.bc import (
    BCConfig,
    action_error,
    clone_policy,
    discounted_returns,
    fit_critic,
    train_actor,
)
from agents.policy import (
    PolicyConfig,
    load_policy,
    make_policy,
    package_version,
    read_policy_file,
    save_policy,
)
from envs import FEATURES
from envs.rollout import run_episode
from experts.demos import to_trajectory
from experts.policy import SchedulePolicy
from experts.schedules import Cosine

SMALL = PolicyConfig(features_dim=32, patch_size=4, d_model=32)


@pytest.fixture(scope="module")
def tiny():
    env = gym.make("LRSchedule-Quadratic-v0", window=16, total_steps=64, steps_per_action=8)
    expert = SchedulePolicy(Cosine(floor=0.05), env.action_space)
    trajs = [to_trajectory(run_episode(env, expert, s)) for s in range(4)]
    return env, trajs


def test_discounted_returns():
    np.testing.assert_allclose(discounted_returns(np.array([1.0, 2.0, 3.0]), 0.5), [2.75, 3.5, 3.0])


def test_bc_reduces_action_error_well_below_untrained(tiny):
    env, trajs = tiny
    policy = make_policy(env.observation_space, env.action_space, SMALL, seed=0)
    before = action_error(policy, trajs)
    train_actor(
        policy,
        trajs,
        BCConfig(epochs=150, batch_size=16),
        rng=np.random.default_rng(0),
        progress_bar=False,
    )
    after = action_error(policy, trajs)
    assert after < 0.2 * before and after < 0.25, (before, after)


def test_clone_policy_saves_a_fitted_policy_for_its_env(tiny, tmp_path):
    env, trajs = tiny
    cfg = BCConfig(epochs=40, batch_size=16, critic_epochs=5)
    policy, record = clone_policy(
        env,
        trajs[:3],
        trajs[3:],
        tmp_path / "bc.pt",
        policy_config=SMALL,
        bc_config=cfg,
        seed=2,
        progress=False,
    )
    assert record["path"] == str(tmp_path / "bc.pt")
    assert (record["demonstrations"], record["transitions"]) == (3, 3 * 8)  # 64 / 8 actions
    assert len(record["selection_action_errors"]) == 40
    assert record["selection_action_errors"][record["best_epoch"] - 1] == min(
        record["selection_action_errors"]
    )
    assert record["action_error_after"] == action_error(policy, trajs[:3])
    assert record["action_error_after"] < 0.5 * record["action_error_before"]
    loaded = load_policy(record["path"], env)
    obs = np.stack([t.obs[0] for t in trajs])
    np.testing.assert_array_equal(
        loaded.predict(obs, deterministic=True)[0], policy.predict(obs, deterministic=True)[0]
    )


def test_critic_fit_reduces_value_error(tiny):
    env, trajs = tiny
    policy = make_policy(env.observation_space, env.action_space, SMALL, seed=0)
    cfg = BCConfig(critic_epochs=0, gamma=0.9)
    untrained = fit_critic(policy, trajs, cfg, rng=np.random.default_rng(0))
    trained = fit_critic(
        policy, trajs, BCConfig(critic_epochs=100, gamma=0.9), rng=np.random.default_rng(0)
    )
    assert trained < 0.1 * untrained


def test_saved_policy_reloads_and_predicts_identically(tiny, tmp_path):
    env, trajs = tiny
    policy = make_policy(env.observation_space, env.action_space, SMALL, seed=1)
    path = save_policy(policy, tmp_path / "p.pt", SMALL, env=env, gamma=0.95)
    restored = load_policy(path, env, device="cpu")
    assert isinstance(restored, ActorCriticPolicy)
    obs = np.stack([t.obs[3] for t in trajs])
    a, _ = policy.predict(obs, deterministic=True)
    b, _ = restored.predict(obs, deterministic=True)
    np.testing.assert_array_equal(a, b)
    torch.testing.assert_close(
        policy.predict_values(torch.as_tensor(obs)), restored.predict_values(torch.as_tensor(obs))
    )
    saved = read_policy_file(path)
    assert saved.gamma == 0.95 and saved.version == package_version() != ""
    assert saved.env == env.unwrapped.signature()
    assert saved.env["env_id"] == "LRSchedule-Quadratic-v0" and saved.env["window"] == 16
    assert saved.env["trainee_options"] == {"total_steps": 64}
    assert saved.env["features"] == list(FEATURES) and saved.env["reward"] == "stability"
    path.write_bytes(b"not a policy")
    with pytest.raises(ValueError, match="is not a saved lrschedule-gym policy"):
        load_policy(path)


def test_building_and_loading_leave_global_rng_untouched(tiny, tmp_path):
    env, _ = tiny
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = make_policy(env.observation_space, env.action_space, SMALL, seed=7)
    path = save_policy(a, tmp_path / "p.pt", SMALL, env=env, gamma=0.99)
    b = load_policy(path, env, device="cpu")
    assert torch.equal(torch.get_rng_state(), state)
    c = make_policy(env.observation_space, env.action_space, SMALL, seed=7)  # same seed, same net
    d = make_policy(env.observation_space, env.action_space, SMALL, seed=8)
    for (name, pa), pb, pc in zip(
        a.state_dict().items(), b.state_dict().values(), c.state_dict().values(), strict=True
    ):
        assert torch.equal(pa, pb) and torch.equal(pa, pc), name
    assert any(not torch.equal(x, y) for x, y in zip(a.parameters(), d.parameters(), strict=True))


QUAD = dict(window=16, total_steps=64, steps_per_action=8)
MISMATCHES = [
    (
        "LRSchedule-MLP-v0",
        dict(QUAD, dataset="digits"),
        r"env_id: policy 'LRSchedule-Quadratic-v0', env 'LRSchedule-MLP-v0'; "
        r"trainee: policy 'quadratic', env 'mlp'",
    ),
    ("LRSchedule-Quadratic-v0", dict(QUAD, max_lr_mult=5.0), r"max_lr_mult: policy 100.0, env 5.0"),
    (
        "LRSchedule-Quadratic-v0",
        dict(QUAD, steps_per_action=16),
        r"steps_per_action: policy 8, env 16",
    ),
    (
        "LRSchedule-Quadratic-v0",
        dict(QUAD, eval_every=32, reward="neg_val_loss"),
        r"eval_every: policy 16, env 32; reward: policy 'stability', env 'neg_val_loss'",
    ),
]


@pytest.mark.parametrize(("env_id", "kwargs", "match"), MISMATCHES)
def test_mismatched_env_is_refused_naming_the_mismatch(tiny, tmp_path, env_id, kwargs, match):
    env, trajs = tiny
    policy = make_policy(env.observation_space, env.action_space, SMALL, seed=0)
    path = save_policy(policy, tmp_path / "p.pt", SMALL, env=env, gamma=0.99)
    target = gym.make(env_id, **kwargs)
    with pytest.raises(ValueError, match=match):
        load_policy(path, target)
    with pytest.warns(UserWarning, match="transferred to another env"):  # deliberate transfer
        transferred = load_policy(path, target, allow_mismatch=True, device="cpu")
    obs = trajs[0].obs[2]
    assert (
        transferred.predict(obs, deterministic=True)[0]
        == policy.predict(obs, deterministic=True)[0]
    )


def test_other_observation_or_action_space_is_refused_even_with_override(tiny, tmp_path):
    env, _ = tiny
    policy = make_policy(env.observation_space, env.action_space, SMALL, seed=0)
    path = save_policy(policy, tmp_path / "p.pt", SMALL, env=env, gamma=0.99)
    for kwargs, match in [
        (
            dict(window=32, total_steps=64, steps_per_action=8),
            r"cannot run.*window: policy 16, env 32",
        ),
        (
            dict(window=16, total_steps=64, steps_per_action=8, action_type="discrete"),
            r"cannot run.*action_type: policy 'continuous', env 'discrete'",
        ),
    ]:
        with pytest.raises(ValueError, match=match):
            load_policy(path, gym.make("LRSchedule-Quadratic-v0", **kwargs), allow_mismatch=True)


def test_same_network_goes_to_ppo(tiny):
    env, _ = tiny
    policy = make_policy(env.observation_space, env.action_space, SMALL)
    ppo = PPO(ActorCriticPolicy, env, policy_kwargs=SMALL.policy_kwargs(), n_steps=8, device="cpu")
    ppo.policy.load_state_dict(policy.state_dict())  # identical architecture and names
    assert ppo.policy.pi_features_extractor is not ppo.policy.vf_features_extractor


def test_bc_is_reproducible_keeps_log_std_and_global_rng(tiny):
    env, trajs = tiny
    torch.manual_seed(7)
    state = torch.get_rng_state()
    cfg = BCConfig(epochs=4, batch_size=8)
    nets = []
    for _ in range(2):  # same seeds: bit-identical policies (imitation shuffles with torch's RNG)
        policy = make_policy(env.observation_space, env.action_space, SMALL, seed=0)
        train_actor(policy, trajs, cfg, rng=np.random.default_rng(3), progress_bar=False)
        nets.append(policy.state_dict())
    assert torch.equal(torch.get_rng_state(), state)
    for name, value in nets[0].items():
        assert torch.equal(value, nets[1][name]), name
    assert torch.equal(nets[0]["log_std"], torch.full((1,), SMALL.log_std_init))  # not fitted
    policy = make_policy(env.observation_space, env.action_space, SMALL, seed=0)
    train_actor(
        policy,
        trajs,
        BCConfig(epochs=4, batch_size=8, train_log_std=True),
        rng=np.random.default_rng(3),
        progress_bar=False,
    )
    assert policy.log_std.requires_grad
    assert float(policy.log_std) != SMALL.log_std_init  # fitted when asked to


def test_bc_keeps_the_epoch_best_on_held_out_demonstrations(tiny):
    env, trajs = tiny
    expert = SchedulePolicy(Cosine(floor=0.05), env.action_space)
    held = [to_trajectory(run_episode(env, expert, s)) for s in (500, 501)]
    policy = make_policy(env.observation_space, env.action_space, SMALL, seed=0)
    fit = train_actor(
        policy,
        trajs,
        BCConfig(epochs=6, batch_size=8),
        rng=np.random.default_rng(0),
        validation=held,
        progress_bar=False,
    )
    errors = fit.validation_errors
    assert len(errors) == 6 and fit.best_epoch == int(np.argmin(errors)) + 1
    assert action_error(policy, held) == min(errors)  # the kept weights are that epoch's
    with pytest.raises(ValueError, match=r"lr_final=0.0 is invalid; expected in \(0, 1\]"):
        BCConfig(lr_final=0.0)
