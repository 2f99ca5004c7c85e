"""The batched VecEnv: K episodes in lockstep, each equal to a single LRScheduleEnv's."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv

from envs import BatchedVecEnv, LRScheduleEnv, make_batched_vec_env
from envs.rewards import divergence_reward
from trainees.batched import make_batched_trainee

TIMING_KEYS = {"total_train_time"}


def random_actions(space, n_steps: int, n_envs: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(space.low, space.high, (n_steps, n_envs, *space.shape)).astype(np.float32)


def assert_same_info(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for key, value in want.items():
        if key in TIMING_KEYS:
            continue
        if key == "episode":  # Monitor's: return and length equal, wall time not
            assert got[key]["l"] == value["l"]
            assert got[key]["r"] == pytest.approx(value["r"], rel=1e-5, abs=1e-6)
        elif key == "terminal_observation":
            np.testing.assert_allclose(got[key], value, rtol=1e-5, atol=1e-5)
        elif isinstance(value, float):
            assert got[key] == pytest.approx(value, rel=1e-5), key
        else:
            assert got[key] == value, key


def compare(env_id: str, n_envs: int, n_steps: int, actions=None, **options):
    """Step the batched vec env and SB3's DummyVecEnv of single envs with the same actions."""
    batched = make_batched_vec_env(env_id, n_envs, seed=7, **options)
    single = make_vec_env(env_id, n_envs, seed=7, env_kwargs=options)
    assert isinstance(batched.unwrapped, BatchedVecEnv)
    assert isinstance(single.unwrapped, DummyVecEnv)
    if actions is None:
        actions = random_actions(batched.action_space, n_steps, n_envs)
    np.testing.assert_allclose(batched.reset(), single.reset(), rtol=1e-5, atol=1e-5)
    dones = []
    for i in range(n_steps):
        obs_b, rew_b, done_b, infos_b = batched.step(actions[i])
        obs_s, rew_s, done_s, infos_s = single.step(actions[i])
        np.testing.assert_allclose(obs_b, obs_s, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(rew_b, rew_s, rtol=1e-5, atol=1e-7)
        assert done_b.tolist() == done_s.tolist()
        for got, want in zip(infos_b, infos_s, strict=True):
            assert_same_info(got, want)
        dones.append(done_b)
    return np.array(dones), infos_b


def test_equals_single_envs_over_a_whole_mlp_episode_with_auto_reset():
    # 6 actions per episode: step 6 ends the episodes (auto-reset), steps 7-8 start anew
    dones, _ = compare("LRSchedule-MLP-v0", 3, 8, dataset="digits", total_steps=192, eval_every=48)
    assert dones[5].all() and not dones[:5].any() and not dones[6:].any()


def test_one_model_diverging_ends_only_its_own_episode():
    # weight decay 1 at a huge LR overflows the weights; env 0 is pushed to the upper
    # bound (lr 1e3), the others sit at the lower bound (lr 1) and keep training
    options = dict(base_lr=100.0, weight_decay=1.0, min_lr_mult=0.01)
    env = LRScheduleEnv("quadratic", **options)
    high, low = env.action_space.high, env.action_space.low
    actions = np.tile(np.stack([high, low, low]), (4, 1, 1))
    dones, infos = compare("LRSchedule-Quadratic-v0", 3, 4, actions=actions, **options)
    assert dones[:, 0].any() and not dones[:, 1:].any()
    first = int(np.flatnonzero(dones[:, 0])[0])
    batched = make_batched_vec_env("LRSchedule-Quadratic-v0", 3, seed=7, **options)
    batched.reset()
    for i in range(first + 1):
        _, rewards, _, infos = batched.step(actions[i])
    assert infos[0]["diverged"] and not infos[1]["diverged"]
    steps = infos[0]["step"]
    expected = divergence_reward("stability", None, remaining=(256 - steps) / 256, margin=1.0)
    assert rewards[0] == pytest.approx(expected)


def test_sb3_ppo_trains_on_the_batched_vec_env():
    vec = make_batched_vec_env("LRSchedule-Quadratic-v0", 4, seed=0)
    model = PPO("MlpPolicy", vec, n_steps=128, batch_size=128, n_epochs=2, seed=0, device="cpu")
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(total_timesteps=2048)
    assert model.num_timesteps == 2048
    # 4 envs x 32 actions an episode: 64 episodes ended, each seen by the monitor
    assert len(model.ep_info_buffer) == 64
    assert all(info["l"] == 32 for info in model.ep_info_buffer)
    changed = [
        not torch.equal(a, b) for a, b in zip(before, model.policy.parameters(), strict=True)
    ]
    assert all(changed)


def test_signature_equals_the_single_envs_and_seeds_follow_sb3():
    vec = make_batched_vec_env("LRSchedule-MLP-v0", 2, seed=3, dataset="digits", total_steps=64)
    single = make_vec_env("LRSchedule-MLP-v0", 2, env_kwargs=dict(dataset="digits", total_steps=64))
    got = vec.env_method("signature")
    want = [e.unwrapped.signature() for e in single.envs]
    assert got == want
    assert got[0]["env_id"] == "LRSchedule-MLP-v0" and got[0]["trainee"] == "mlp"


def test_without_a_batched_form_falls_back_to_single_envs():
    with pytest.warns(UserWarning, match="'resnet18' of LRSchedule-ResNet18-v0 has no batched"):
        vec = make_batched_vec_env("LRSchedule-ResNet18-v0", 2, dataset="digits", width=8)
    assert type(vec) is DummyVecEnv and vec.num_envs == 2
    with pytest.warns(UserWarning, match="optimizer 'schedulefree' has no batched form"):
        vec = make_batched_vec_env("LRSchedule-Quadratic-v0", 2, optimizer="schedulefree")
    assert type(vec) is DummyVecEnv
    vec.reset()  # the optimizer is built when a run starts
    assert type(vec.envs[0].unwrapped.trainee.optimizer).__name__ == "AdamWScheduleFree"
    with pytest.warns(UserWarning, match="norm='layer' has no batched form"):
        vec = make_batched_vec_env("LRSchedule-MLP-v0", 2, dataset="digits", norm="layer")
    assert type(vec) is DummyVecEnv
    with pytest.warns(UserWarning, match="observation='v1' needs update moments"):
        vec = make_batched_vec_env("LRSchedule-Quadratic-v1", 2)
    assert type(vec) is DummyVecEnv and vec.reset().shape == (2, 64, 17)
    with pytest.raises(ValueError, match="batched envs compute observation v0 only"):
        BatchedVecEnv(make_batched_trainee("quadratic", 2), observation="v1")


def test_bad_options_are_named():
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['bogus'\].*valid env options"):
        make_batched_vec_env("LRSchedule-Quadratic-v0", 2, bogus=1)
    with pytest.raises(ValueError, match="n_envs=0 is invalid"):
        make_batched_vec_env("LRSchedule-Quadratic-v0", 0)
    with pytest.raises(ValueError, match="steps_per_action=0 is invalid"):
        make_batched_vec_env("LRSchedule-Quadratic-v0", 2, steps_per_action=0)


def test_renders_every_env():
    vec = make_batched_vec_env("LRSchedule-Quadratic-v0", 2, render_mode="rgb_array")
    vec.reset()
    vec.step(np.zeros((2, 1), dtype=np.float32))
    images = vec.get_images()
    assert [im.shape for im in images] == [(240, 320, 3)] * 2


def test_a_mixed_vec_env_steps_each_part_as_its_single_envs_from_disjoint_seeds():
    from envs.vec_env import MixedVecEnv, make_mixed_vec_env

    quad = "LRSchedule-Quadratic-v0"
    tasks = [(quad, {"total_steps": 64}, 2), (quad, {"total_steps": 96, "base_lr": 0.02}, 1)]
    block = range(700, 760)
    mixed = make_mixed_vec_env(tasks, episode_seeds=block)
    assert mixed.num_envs == 3
    envs = mixed.get_attr("unwrapped")
    assert [e.trainee.total_steps for e in envs] == [64, 64, 96]
    assert [e.base_lr for e in mixed.get_attr("unwrapped", [2])] == [0.02]
    obs = mixed.reset()
    seeds = [info["episode_seed"] for info in mixed.reset_infos]
    assert seeds == [700, 701, 730]  # part 0 owns 700..729, part 1 730..759
    singles = [
        gym.make(quad, total_steps=64),
        gym.make(quad, total_steps=64),
        gym.make(quad, total_steps=96, base_lr=0.02),
    ]
    want = [env.reset(seed=s)[0] for env, s in zip(singles, seeds, strict=True)]
    np.testing.assert_allclose(obs, np.stack(want), rtol=1e-5, atol=1e-6)
    n_actions = 64 // envs[0].config.steps_per_action  # the 64-step episodes' length
    for step in random_actions(mixed.action_space, n_actions, 3):
        obs, rewards, dones, infos = mixed.step(step)
        for k, env in enumerate(singles):
            o, r, terminated, *_ = env.step(step[k])
            np.testing.assert_allclose(
                infos[k].get("terminal_observation", obs[k]), o, rtol=1e-5, atol=1e-6
            )
            assert rewards[k] == pytest.approx(r, rel=1e-5, abs=1e-7)
            assert dones[k] == terminated
    assert dones.tolist() == [True, True, False]  # the 96-step episode goes on
    with pytest.raises(ValueError, match=r"part 1 has observation_space .* one policy cannot"):
        MixedVecEnv(
            [
                make_batched_vec_env(quad, 1, total_steps=64),
                make_batched_vec_env(quad, 1, total_steps=64, window=32),
            ]
        )
