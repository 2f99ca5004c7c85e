"""PPO fine-tuning from a BC policy file: safeguards, checkpoints and the script."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents.policy import PolicyConfig, load_policy, make_policy, read_policy_file, save_policy
from agents.ppo import FinetuneConfig, FinetunedPPO, load_checkpoint, save_checkpoint
from envs import make_batched_vec_env

ENV = "LRSchedule-Quadratic-v0"
ROOT = Path(__file__).resolve().parents[2]
# small rollouts: 2 envs x 32 steps, one minibatch, so a test takes seconds
SMALL = dict(n_steps=32, batch_size=64, n_epochs=2)


@pytest.fixture(scope="module")
def bc_file(tmp_path_factory) -> Path:
    """A policy file for the quadratic env (untrained: the tests need a start, not a good one)."""
    env = gym.make(ENV)
    config = PolicyConfig(log_std_init=-2.0)  # as a BC fit that narrowed its Gaussian
    policy = make_policy(env.observation_space, env.action_space, config, seed=0)
    return save_policy(
        policy, tmp_path_factory.mktemp("bc") / "bc_cosine.pt", config, env=env, gamma=0.99
    )


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
        model = build(bc_file, kl_coef=kl_coef, kl_final=1.0, critic_warmup_rollouts=0,
                      learning_rate=3e-3, target_kl=None, clip_range=0.3, n_epochs=8)  # fmt: skip
        model.learn(256)
        drifts[kl_coef] = action_drift(model, bc_file, obs)
    assert drifts[100.0] < 0.05, drifts
    assert drifts[0.0] > 3 * drifts[100.0], drifts


def run_script(*args: str, **kwargs) -> subprocess.Popen:
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-W", "ignore", str(ROOT / "scripts" / "finetune_ppo.py"), *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs,
    )  # fmt: skip


SCRIPT_ARGS = (
    "--n-envs", "2", "--ppo.n-steps", "32", "--ppo.batch-size", "64", "--ppo.n-epochs", "2",
    "--eval-rollouts", "2", "--eval-episodes", "1", "--checkpoint-rollouts", "1",
    "--report-episodes", "2", "--no-progress", "--device", "cpu",
)  # fmt: skip


@pytest.mark.slow
def test_finetune_script_smoke(bc_file, tmp_path):
    proc = run_script(
        "--init", str(bc_file), "--total-timesteps", "256", "--out", str(tmp_path), *SCRIPT_ARGS
    )
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    (folder,) = tmp_path.iterdir()
    assert folder.name.startswith("LRSchedule-Quadratic-v0__finetune_ppo__0__")
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["total_timesteps"] == 256 and metrics["vec_env"] == "BatchedVecEnv"
    assert [h["timesteps"] for h in metrics["history"]] == [0, 128, 256]
    assert metrics["report"]["seeds"] == [1000, 1001]
    paired = metrics["report"]["paired"]["ppo_final_minus_bc_returns"]
    assert paired["n"] == 2 and paired["ci_low"] <= paired["mean"] <= paired["ci_high"]
    env = gym.make(ENV)
    for name in ("ppo_final", "ppo_best"):
        load_policy(folder / "policies" / f"{name}.pt", env)  # the one-file format, this env
    for plot in ("progress", "schedules"):
        assert (folder / "plots" / f"{plot}.png").exists() and (
            folder / "plots" / f"{plot}.csv"
        ).exists()
    assert list(folder.glob("tb/ppo_1/events.out.tfevents.*"))


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_last_checkpoint(bc_file, tmp_path):
    total = 640  # 10 rollouts of 64 steps: more than happen before the kill
    proc = run_script(
        "--init",
        str(bc_file),
        "--total-timesteps",
        str(total),
        "--out",
        str(tmp_path),
        *SCRIPT_ARGS,
    )
    deadline = time.monotonic() + 240
    checkpoint = None
    while time.monotonic() < deadline and proc.poll() is None:
        found = list(tmp_path.glob("*/checkpoint.pt"))
        if found and torch.load(found[0], weights_only=True)["rollouts_done"] >= 3:
            checkpoint = found[0]
            break
        time.sleep(0.5)
    assert checkpoint is not None and proc.poll() is None, "no checkpoint before the deadline"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    folder = checkpoint.parent
    saved = torch.load(checkpoint, weights_only=True)
    assert not list(folder.rglob("*.tmp")), "a half-written file was left behind"
    history_before = json.loads((folder / "history.json").read_text())
    resumed = run_script("--resume", str(folder), "--no-progress")
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out
    assert f"resumed {folder} at {saved['num_timesteps']} timesteps" in out, out[-3000:]
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["total_timesteps"] == total
    steps = [h["timesteps"] for h in metrics["history"]]
    assert steps == sorted(set(steps)) and steps[-1] == total
    # nothing evaluated before the checkpoint was lost; at most one interval was redone
    kept = [h for h in history_before if h["timesteps"] <= saved["num_timesteps"]]
    assert metrics["history"][: len(kept)] == kept
    assert (folder / "policies" / "ppo_final.pt").exists()
    assert not list(folder.rglob("*.tmp"))


def test_checkpoint_round_trip_restores_rng_and_counters(bc_file, tmp_path):
    model = build(bc_file)
    model.learn(64)
    save_checkpoint(model, tmp_path / "c.pt", {"history": [], "best_return": -1.0})
    draws = torch.rand(3), np.random.rand(3)
    other = build(bc_file)
    extra = load_checkpoint(other, tmp_path / "c.pt")
    assert extra == {"history": [], "best_return": -1.0}
    assert (other.num_timesteps, other.rollouts_done) == (64, 1)
    assert torch.equal(torch.rand(3), draws[0]) and np.array_equal(np.random.rand(3), draws[1])
    for a, b in zip(model.policy.parameters(), other.policy.parameters(), strict=True):
        assert torch.equal(a, b)
