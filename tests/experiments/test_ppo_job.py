"""The PPO fine-tuning job: the script, resume after a kill or a crash, training seeds, argument errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import pytest
import torch

from agents.policy import load_policy
from agents.ppo import FinetuneConfig
from common import seeds
from envs import LRScheduleEnv
from experiments import ppo_job as ppo_module
from experiments.ppo_job import finetune, policy_digest
from tests.conftest import PPO_ENV as ENV
from tests.conftest import SMALL_PPO as SMALL
from trainees.batched.trainee import TraineeSlot

SUMMARIZE = ppo_module.summarize_episodes
ROOT = Path(__file__).resolve().parents[2]


class CrashError(Exception):
    """Stands for a kill between two checkpoints."""


def run_script(*args: str, **kwargs) -> subprocess.Popen:
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-W", "ignore", str(ROOT / "scripts" / "finetune_ppo.py"), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


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
    kwargs = dict(
        n_envs=2,
        config=FinetuneConfig(**SMALL),
        eval_every=1,
        eval_episodes=1,
        checkpoint_every=3,
        report_episodes=1,
        progress=False,
        device="cpu",
    )
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
    finetune(
        bc_file,
        folder,
        total_timesteps=192,
        n_envs=2,
        seed=seed,
        config=FinetuneConfig(**SMALL),
        eval_every=10,
        eval_episodes=1,
        checkpoint_every=10,
        report_episodes=1,
        progress=False,
        device="cpu",
    )
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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--resume", "RUN", "--seed", "3", "--ppo.learning-rate", "1e-3"),
            "--resume continues a run with its own arguments; cannot change --out, --ppo.learning-rate, "
            "--seed (allowed with --resume: --total-timesteps, --progress, --device)",
        ),
        (("--init", "bc.pt", "--expert", "cosinus"), "--expert 'cosinus' is invalid; valid: "),
        (("--init", "bc.pt", "--seed", "90"), "--seed: run seed 90 is invalid"),
        (("--init", "bc.pt", "--env", "LRSchedule-Nope-v0"), "--env 'LRSchedule-Nope-v0' is not"),
        (
            (
                "--total-timesteps",
                "64",
            ),
            "give --init POLICY_FILE to start a run, or --resume",
        ),
    ],
)
def test_argument_errors_are_one_line_and_exit_2_before_any_work(args, message, tmp_path):
    proc = run_script(*args, "--out", str(tmp_path))
    out, _ = proc.communicate(timeout=120)
    lines = [line for line in out.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, out
    assert lines[0].startswith("finetune_ppo.py: error: ") and message in lines[0], lines[0]
    assert not list(tmp_path.iterdir())
