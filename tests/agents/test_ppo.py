"""PPO fine-tuning from a BC policy file: safeguards, checkpoints and the script."""

from __future__ import annotations

import dataclasses
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
from stable_baselines3 import PPO
from stable_baselines3.common.policies import ActorCriticPolicy

from agents.checkpoint import load_checkpoint, save_checkpoint
from agents.policy import PolicyConfig, load_policy, make_policy, read_policy_file, save_policy
from agents.ppo import FinetuneConfig, FinetunedPPO
from common import seeds
from envs import LRScheduleEnv, make_batched_vec_env
from envs.vec_env import EpisodeSeeds
from experiments import ppo_job as ppo_module
from experiments.ppo_job import finetune, policy_digest
from trainees.batched.trainee import TraineeSlot

ENV = "LRSchedule-Quadratic-v0"
SUMMARIZE = ppo_module.summarize_episodes
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


class CrashError(Exception):
    """Stands for a kill between two checkpoints."""


@pytest.mark.slow
def test_after_a_crash_ppo_best_holds_a_policy_of_the_resumed_history(
    bc_file, tmp_path, monkeypatch
):
    """Evaluations every rollout, checkpoints every 3: killed after rollout 5's evaluation."""
    score = iter(range(1000))  # every evaluation is a new best, so ppo_best.pt changes each time
    monkeypatch.setattr(
        ppo_module,
        "summarize_episodes",
        lambda runs: SUMMARIZE(runs) | {"mean_return": float(next(score))},
    )
    between = ppo_module._Job.between_rollouts

    def crash_after_fifth(job, model):
        between(job, model)
        if model.rollouts_done == 5:
            raise CrashError

    monkeypatch.setattr(ppo_module._Job, "between_rollouts", crash_after_fifth)
    kwargs = dict(n_envs=2, config=FinetuneConfig(**SMALL), eval_every=1, eval_episodes=1,
                  checkpoint_every=3, report_episodes=1, progress=False, device="cpu")  # fmt: skip
    with pytest.raises(CrashError):
        finetune(bc_file, tmp_path, total_timesteps=640, **kwargs)
    lost = policy_digest(load_policy(tmp_path / "policies" / "ppo_best.pt", device="cpu"))
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert saved["num_timesteps"] == 192  # rollout 3; rollouts 4 and 5 were lost
    monkeypatch.setattr(ppo_module._Job, "between_rollouts", between)
    metrics = finetune(bc_file, tmp_path, total_timesteps=192, resume=True, **kwargs)
    history = metrics["history"]
    assert [h["timesteps"] for h in history] == [0, 64, 128, 192]
    best = max(history, key=lambda h: h["mean_return"])
    on_disk = policy_digest(load_policy(tmp_path / "policies" / "ppo_best.pt", device="cpu"))
    assert on_disk == best["policy_sha1"] != lost
    assert json.loads((tmp_path / "history.json").read_text()) == history
    # --total-timesteps extends the finished run, with fresh episodes from the same block
    started = metrics["training_seeds"]["started"]
    more = finetune(bc_file, tmp_path, total_timesteps=256, resume=True, **kwargs)
    assert more["total_timesteps"] == 256 and more["history"][:4] == history
    # the checkpoint's rollout was evaluated before the crash: not again after the resume
    assert [h["timesteps"] for h in more["history"]] == [0, 64, 128, 192, 256]
    assert all(b > a for a, b in zip(started, more["training_seeds"]["started"], strict=True))


def test_without_safeguards_is_sb3_ppo_parameter_for_parameter(bc_file):
    """--no-safeguards is plain PPO: one rollout and update equal SB3 2.2's, bit for bit."""
    saved = read_policy_file(bc_file)
    config = FinetuneConfig(**SMALL, learning_rate=1e-3).without_safeguards()
    plain = PPO(
        ActorCriticPolicy, make_batched_vec_env(ENV, 2, seed=5), learning_rate=1e-3,
        n_steps=32, batch_size=64, n_epochs=2, gamma=saved.gamma, gae_lambda=config.gae_lambda,
        clip_range=config.clip_range, ent_coef=0.0, vf_coef=config.vf_coef,
        max_grad_norm=config.max_grad_norm, target_kl=config.target_kl,
        policy_kwargs=saved.config.policy_kwargs(), seed=3, device="cpu",
    )  # fmt: skip
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
        None, 0, 0.0, False,
    )  # fmt: skip
    same = {"log_std", "critic_warmup_rollouts", "kl_coef", "separate_clip"}
    for field_ in dataclasses.fields(base):
        if field_.name not in same:
            assert getattr(plain, field_.name) == getattr(base, field_.name), field_.name


def training_episode_seeds(bc_file: Path, folder: Path, seed: int, monkeypatch) -> dict:
    """The env seed and the trainee seed of every training episode of a small run.

    Training envs are the ones over a batched trainee's slots (evaluations and the final
    report run single trainees); first episodes and automatic resets are all recorded.
    """
    seen: dict[str, list] = {"env": [], "trainee": []}
    env_reset, slot_reset = LRScheduleEnv.reset, TraineeSlot.reset

    def spy_env(self, *, seed=None, options=None):
        if isinstance(self.trainee, TraineeSlot):
            seen["env"].append(seed)
        return env_reset(self, seed=seed, options=options)

    def spy_slot(self, seed):
        seen["trainee"].append(seed)
        return slot_reset(self, seed)

    monkeypatch.setattr(LRScheduleEnv, "reset", spy_env)
    monkeypatch.setattr(TraineeSlot, "reset", spy_slot)
    # 2 envs x 96 steps: 3 episodes of 32 actions each, so two automatic resets per env
    finetune(bc_file, folder, total_timesteps=192, n_envs=2, seed=seed,
             config=FinetuneConfig(**SMALL), eval_every=10, eval_episodes=1,
             checkpoint_every=10, report_episodes=1, progress=False, device="cpu")  # fmt: skip
    monkeypatch.undo()
    return seen


def trainee_seed(env_seed: int) -> int:
    """The trainee seed an episode reset with ``env_seed`` trains from (LRScheduleEnv.reset)."""
    return int(gym.utils.seeding.np_random(env_seed)[0].integers(0, 2**31 - 1))


def test_ppo_training_episodes_use_their_own_rl_training_seeds(bc_file, tmp_path, monkeypatch):
    runs = {s: training_episode_seeds(bc_file, tmp_path / str(s), s, monkeypatch) for s in (0, 1)}
    for s, seen in runs.items():
        assert len(seen["env"]) == len(seen["trainee"]) >= 6  # first episodes and auto-resets
        assert all(e in seeds.RL_TRAINING for e in seen["env"]), seen["env"]
        assert all(e in seeds.rl_training_block(s) for e in seen["env"])
        assert len(set(seen["env"])) == len(seen["env"])  # no episode seed twice
        assert seen["trainee"] == [trainee_seed(e) for e in seen["env"]]
    assert not set(runs[0]["env"]) & set(runs[1]["env"])
    assert not set(runs[0]["trainee"]) & set(runs[1]["trainee"])
    others = [r for name, r in seeds.RANGES.items() if name != "rl_training"]
    other_trainees = {trainee_seed(e) for r in others for e in r}
    for seen in runs.values():
        assert not any(e in r for r in others for e in seen["env"])
        assert not set(seen["trainee"]) & other_trainees
    metrics = json.loads((next((tmp_path / "0").glob("metrics.json"))).read_text())
    assert metrics["training_seeds"]["block"] == [100_000, 110_000]
    assert metrics["training_seeds"]["started"] == [4, 4]  # the last auto-resets too


def test_an_invalid_run_seed_or_expert_is_refused_before_any_work(bc_file, tmp_path):
    with pytest.raises(ValueError, match=r"run seed 90 is invalid; expected an integer in 0\.\.89"):
        finetune(bc_file, tmp_path, seed=90, progress=False)
    with pytest.raises(ValueError, match=r"expert 'cosinus' is invalid; valid: .*cosine"):
        finetune(bc_file, tmp_path, expert="cosinus", progress=False)
    assert not list(tmp_path.iterdir())  # nothing was started


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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--resume", "RUN", "--seed", "3", "--ppo.learning-rate", "1e-3"),
         "--resume continues a run with its own arguments; cannot change --out, --ppo.learning-rate, "
         "--seed (allowed with --resume: --total-timesteps, --progress, --device)"),
        (("--init", "bc.pt", "--expert", "cosinus"), "--expert 'cosinus' is invalid; valid: "),
        (("--init", "bc.pt", "--seed", "90"), "--seed: run seed 90 is invalid"),
        (("--init", "bc.pt", "--env", "LRSchedule-Nope-v0"), "--env 'LRSchedule-Nope-v0' is not"),
        (("--total-timesteps", "64",), "give --init POLICY_FILE to start a run, or --resume"),
    ],
)  # fmt: skip
def test_argument_errors_are_one_line_and_exit_2_before_any_work(args, message, tmp_path):
    proc = run_script(*args, "--out", str(tmp_path))
    out, _ = proc.communicate(timeout=120)
    lines = [line for line in out.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, out
    assert lines[0].startswith("finetune_ppo.py: error: ") and message in lines[0], lines[0]
    assert not list(tmp_path.iterdir())
