"""The tuning-free recipe: seeds, backends, resume, refusals, checks and LR curves."""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents.bc import BCConfig
from agents.policy import read_policy_file
from agents.ppo import FinetuneConfig
from common import seeds
from common.files import write_json
from evaluation.backends import LocalBackend
from experiments.task_mixture import MixTask
from experiments.tuningfree import (
    CHECK_FIELDS,
    RolloutItem,
    TuningFreeConfig,
    expert_lr_curve,
    lr_curves,
    plot_run,
    rollout,
    run_items,
    train_tuningfree,
)
from experiments.tuningfree_ppo import PPO_BLOCK_OFFSET, PPOStage
from experts.schedules import make_schedule
from trainees import QuadraticTrainee, TorchTrainee

QUAD = "LRSchedule-Quadratic-v0"
TIMING = ("wall_seconds",)


def config(**kw) -> TuningFreeConfig:
    base = dict(
        env_id=QUAD,
        options={"total_steps": 64},
        reference_lr=0.01,
        demo_episodes=2,
        rounds=1,
        episodes_per_round=2,
        validation_episodes=1,
        check_ks=(-3, 3),
        check_seeds=1,
        curve_ks=(-3, 0, 3),
        bc=BCConfig(epochs=3, critic_epochs=0),
    )
    return TuningFreeConfig(**(base | kw))


def records(metrics: dict) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in metrics["rounds"]]


def untimed(info: dict) -> dict:
    return {k: v for k, v in info.items() if "time" not in k}


def weights(path) -> dict:
    return read_policy_file(path).state_dict


def same_weights(a, b) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_round_seeds_are_each_run_seeds_own_and_in_their_ranges():
    cfg = TuningFreeConfig(env_id=QUAD, reference_lr=0.01, demo_episodes=16, rounds=3)
    a, b = cfg.round_seeds(0), cfg.round_seeds(1)
    assert a[0] == list(range(0, 16)) and b[0] == list(range(50, 66))
    assert all(s in seeds.DEMONSTRATIONS for s in a[0] + b[0])
    assert all(s in seeds.rl_training_block(0) for r in a[1:] for s in r)
    assert all(s in seeds.rl_training_block(1) for r in b[1:] for s in r)
    flat_a, flat_b = [s for r in a for s in r], [s for r in b for s in r]
    assert len(set(flat_a)) == len(flat_a) == 16 + 3 * 16 and not set(flat_a) & set(flat_b)
    with pytest.raises(ValueError, match=r"run seed 10 is invalid; expected an integer in 0\.\.9"):
        cfg.round_seeds(10)


def test_bad_configurations_are_refused_naming_the_value():
    with pytest.raises(ValueError, match=r"schedule=.cosinus. is invalid; valid: .*cosine"):
        config(schedule="cosinus")
    with pytest.raises(ValueError, match=r"spread=0\.5 is invalid"):
        config(spread=0.5)
    with pytest.raises(ValueError, match="no reference LR for 'LRSchedule-Quadratic-v0'"):
        config(reference_lr=None).reference()
    with pytest.raises(ValueError, match=r"total_steps=2000; options .* differ"):
        TuningFreeConfig(options={"dataset": "mnist", "total_steps": 100}).reference()


def test_a_resume_ends_as_an_uninterrupted_run_and_processes_run_the_same_episodes(tmp_path):
    local = train_tuningfree(
        config(), tmp_path / "a", backend=LocalBackend(workers=0), progress=False
    )
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert [r["round"] for r in local["rounds"]] == [0, 1]
    assert local["rounds"][1]["transitions"] == 2 * local["rounds"][0]["transitions"]
    assert set(local["rounds"][1]["check"]) == {"-3", "3"} and set(local["lr_curves"]) == {
        "-3",
        "0",
        "3",
    }
    # a run killed during round 1: round 0 is on disk, round 1 is not
    shutil.rmtree(tmp_path / "a" / "rounds" / "1")
    (tmp_path / "a" / "policy.pt").unlink()
    resumed = train_tuningfree(
        config(), tmp_path / "a", backend=LocalBackend(workers=0), progress=False
    )
    assert records(resumed) == records(local)
    assert same_weights(tmp_path / "a" / "policy.pt", tmp_path / "b" / "policy.pt")
    for name in ("action_error.png", "action_error.csv", "lr_curves.png", "lr_curves.csv"):
        assert (tmp_path / "a" / "plots" / name).exists()
    saved = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert saved["settings"]["reference_lr"] == 0.01 and len(saved["rounds"]) == 2
    assert saved["expert_lr_curve"]["step"] == saved["lr_curves"]["0"]["step"]  # one axis
    with pytest.raises(
        ValueError,
        match=r"another configuration \(.*settings.json: "
        r"config.spread: stored 8.0, given 4.0\); give a new --out",
    ):
        train_tuningfree(config(spread=4.0), tmp_path / "a", progress=False)
    with pytest.raises(
        ValueError,
        match=r"config.schedule: stored 'linear_warmup', given "
        r"'cosine'; config.spread: stored 8.0, given 2.0\)",
    ):
        train_tuningfree(config(schedule="cosine", spread=2.0), tmp_path / "a", progress=False)
    # ended at round 0 instead: that round's policy, as a 0-round run from the start gives
    shorter = train_tuningfree(config(rounds=0), tmp_path / "a", progress=False)
    assert records(shorter) == records(local)[:1]
    assert same_weights(tmp_path / "a" / "policy.pt", tmp_path / "a" / "rounds" / "0" / "policy.pt")
    # the episodes of a round, in this process and in two worker processes
    kwargs = (("base_lr", 0.01), ("base_lr_spread", 8.0), ("total_steps", 64))
    items = [
        RolloutItem(QUAD, kwargs, policy, "cosine", 0.01, seed)
        for policy in (None, str(tmp_path / "b" / "policy.pt"))
        for seed in (5, 6)
    ]
    here = run_items(LocalBackend(workers=0), items, "", progress=False)
    there = run_items(LocalBackend(workers=2), items, "", progress=False)
    for a, b in zip(here, there, strict=True):
        assert np.array_equal(a.observations, b.observations)
        assert [untimed(i) for i in a.infos] == [untimed(i) for i in b.infos]
    assert here[0].base_lr != here[1].base_lr  # drawn per seed


def test_the_ppo_stage_trains_from_the_dagger_policy_on_its_own_block_and_resumes(tmp_path):
    small = FinetuneConfig(n_steps=32, batch_size=64, n_epochs=1, critic_warmup_rollouts=1)
    stage = PPOStage(timesteps=128, n_envs=2, config=small)
    metrics = train_tuningfree(config(rounds=0), tmp_path, progress=False, ppo=stage)
    ppo = metrics["ppo"]
    assert ppo["total_timesteps"] == 128
    assert ppo["training_seeds"]["block"] == [
        seeds.rl_training_block(PPO_BLOCK_OFFSET).start,
        seeds.rl_training_block(PPO_BLOCK_OFFSET).stop,
    ]  # not run seed 0's DAgger block
    shipped = read_policy_file(tmp_path / "policy_ppo.pt")  # the actor alone, a plain file
    assert shipped.observation_space == read_policy_file(tmp_path / "policy.pt").observation_space
    assert shipped.env["base_lr_spread"] == 8.0
    stored = json.loads((tmp_path / "ppo" / "metrics.json").read_text())
    assert stored["privileged_critic"]["reference_lr"] == 0.01
    extended = train_tuningfree(
        config(rounds=0),
        tmp_path,
        progress=False,
        ppo=PPOStage(timesteps=192, n_envs=2, config=small),
    )
    assert extended["ppo"]["total_timesteps"] == 192
    with pytest.raises(ValueError, match="holds a PPO stage of other settings"):
        train_tuningfree(
            config(rounds=0),
            tmp_path,
            progress=False,
            ppo=PPOStage(timesteps=192, n_envs=4, config=small),
        )
    with pytest.raises(ValueError, match="reward='loss' is invalid; valid: stability"):
        PPOStage(reward="loss")
    # the ablation: a critic that sees what the actor sees, from the same DAgger policy
    shutil.copytree(tmp_path, tmp_path / "plain", ignore=shutil.ignore_patterns("ppo*", "plain"))
    plain = PPOStage(timesteps=128, n_envs=2, config=small, privileged_critic=False)
    metrics = train_tuningfree(config(rounds=0), tmp_path / "plain", progress=False, ppo=plain)
    assert metrics["ppo"]["total_timesteps"] == 128
    assert (
        json.loads((tmp_path / "plain" / "ppo" / "metrics.json").read_text())["privileged_critic"]
        is None
    )
    assert (
        json.loads((tmp_path / "plain" / "ppo" / "stage.json").read_text())["privileged_critic"]
        is False
    )
    mixture = config(rounds=0, extra_tasks=(MixTask(QUAD, {"total_steps": 96}, 0.02),))
    with pytest.raises(ValueError, match="privileged_critic=False is invalid with a mixture"):
        train_tuningfree(mixture, tmp_path / "refused", progress=False, ppo=plain)
    assert not (tmp_path / "refused").exists()  # refused before any work
    # a sampled CNN task: the privileged critic has no trainee feature for it
    cnn = config(rounds=0, extra_tasks=(MixTask("LRSchedule-CNN-v0", {"dataset": "digits"}, 0.01),))
    privileged = PPOStage(timesteps=128, n_envs=2, config=small)
    with pytest.raises(ValueError, match=r"tasks CNN-digits \(cnn\) have trainees the privileged"):
        train_tuningfree(cnn, tmp_path / "refused_cnn", progress=False, ppo=privileged)
    assert not (tmp_path / "refused_cnn").exists()


def test_a_mixture_adds_each_tasks_episodes_to_every_round_labelled_at_its_reference(tmp_path):
    longer = MixTask(QUAD, {"total_steps": 96}, reference_lr=0.02, source="a test")
    cfg = config(extra_tasks=(longer,), episodes_per_extra_task=1)
    assert cfg.round_tasks(0) == [None, None, longer] and cfg.round_tasks(1) == [None, None, longer]
    first, second = cfg.round_seeds(0)
    assert len(first) == len(second) == 3 and not set(first) & set(second)
    metrics = train_tuningfree(cfg, tmp_path / "mix", progress=False)
    per_action = gym.make(QUAD).unwrapped.config.steps_per_action
    r0, r1 = metrics["rounds"]
    assert r0["tasks"] == {
        "main": {
            "episodes": 2,
            "best_val_loss": r0["tasks"]["main"]["best_val_loss"],
            "diverged": 0,
        },
        "Quadratic-96steps": {
            "episodes": 1,
            "best_val_loss": r0["tasks"]["Quadratic-96steps"]["best_val_loss"],
            "diverged": 0,
        },
    }
    assert r0["transitions"] == 2 * (64 // per_action) + 96 // per_action
    assert r1["transitions"] == 2 * r0["transitions"]
    # round 0's last episode is the expert's on the 96-step task: it acted at its own
    # reference, so its labels (the same expert, relabelled) are its actions: the default
    # expert's schedule at 0.02
    with np.load(tmp_path / "mix" / "rounds" / "0" / "data.npz") as z:
        obs, acts = z["obs_2"], z["acts_2"]
    assert len(acts) == 96 // per_action
    base_lr = r0["rollout_base_lrs"][2]
    for o, a in zip(obs[:-1], acts, strict=True):
        progress = 1.0 - float(o[-1, 0])
        want = np.log(make_schedule(cfg.schedule)(progress) * 0.02 / base_lr)
        assert a[0] == pytest.approx(want, abs=1e-5)
    # a task whose spaces differ is refused before any episode, naming it
    narrow = MixTask(QUAD, {"total_steps": 64, "window": 32}, reference_lr=0.01)
    with pytest.raises(
        ValueError,
        match=r"task Quadratic-64steps .* has observation_space "
        r"Box\(shape=\(32, 10\).*cannot act in both",
    ):
        train_tuningfree(config(extra_tasks=(narrow,)), tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad" / "settings.json").exists()  # the folder stays free


def test_resumes_fill_in_the_ids_defaults_and_mixtures_count_in_the_demo_share():
    from experiments.tuningfree import _but_rounds

    def settings(options):
        mlp = TuningFreeConfig(options=options)
        return {"config": json.loads(json.dumps(dataclasses.asdict(mlp), default=list)), "seed": 0}

    assert _but_rounds(settings({})) == _but_rounds(settings({"dataset": "mnist"}))
    assert _but_rounds(settings({})) != _but_rounds(settings({"dataset": "digits"}))
    with pytest.raises(ValueError, match=r"demo_episodes=48 \(\+ 4 of the further tasks\)"):
        config(demo_episodes=48, extra_tasks=(MixTask(QUAD, {}, 0.1),))


def test_ppo_on_a_mixture_trains_on_every_task_and_the_critic_sees_each_ones_reference(tmp_path):
    from agents.privileged import VecPrivileged
    from envs.vec_env import make_mixed_vec_env

    # the privileged features: log(reference / base_lr) with each env's own reference
    mixed = make_mixed_vec_env(
        [
            (QUAD, {"total_steps": 64, "base_lr": 0.01}, 1),
            (QUAD, {"total_steps": 96, "base_lr": 0.02}, 1),
        ],
        episode_seeds=range(0, 10),
    )
    obs = VecPrivileged(mixed, [0.01, 0.04]).reset()
    n = mixed.observation_space.shape[1]
    assert obs[:, -1, n] == pytest.approx([0.0, np.log(0.04 / 0.02)], abs=1e-6)
    with pytest.raises(ValueError, match=r"reference_lr=\[0.01, -1\] is invalid"):
        VecPrivileged(mixed, [0.01, -1])
    # the recipe's PPO stage on the mixture: the main env's 2 envs and 1 of the 96-step task
    longer = MixTask(QUAD, {"total_steps": 96}, reference_lr=0.02)
    cfg = config(rounds=0, extra_tasks=(longer,), episodes_per_extra_task=1)
    small = FinetuneConfig(n_steps=32, batch_size=48, n_epochs=1, critic_warmup_rollouts=1)
    stage = PPOStage(timesteps=192, n_envs=2, envs_per_extra_task=1, config=small)
    metrics = train_tuningfree(cfg, tmp_path, progress=False, ppo=stage)
    assert metrics["ppo"]["total_timesteps"] == 192  # 2 rollouts of 32 steps x 3 envs
    parts = metrics["ppo"]["training_seeds"]["parts"]
    assert [p["n_envs"] for p in parts] == [2, 1] and all(min(p["started"]) >= 1 for p in parts)
    stored = json.loads((tmp_path / "ppo" / "metrics.json").read_text())
    assert [(m["env_id"], m["n_envs"], m["reference_lr"]) for m in stored["mixture"]] == [
        (QUAD, 1, 0.02)
    ]
    assert stored["mixture"][0]["options"]["total_steps"] == 96


def test_the_lr_curves_show_the_expert_and_the_policy_on_the_same_optimizer_steps(tmp_path):
    """Every point is the LR of the action block that ends at its optimizer step, the
    expert's as the policy's: the expert acting at the reference lies on its own curve."""
    cfg = config(options={"total_steps": 40}, curve_ks=(0,))  # blocks of 8 steps
    per_action = gym.make(QUAD).unwrapped.config.steps_per_action
    assert per_action == 8
    steps, lrs = expert_lr_curve(cfg.schedule, 0.01, 40, per_action)
    # the blocks chosen after 0, 8, 16, 24, 32 steps, at progress 0, .2, .4, .6, .8: a
    # warm-up from 0.01 to 1 over the first 10%, then linear decay to 0.01 (at progress p
    # past the warm-up: 1 - 0.99 (p - 0.1) / 0.9), times the reference 0.01
    assert steps == [8, 16, 24, 32, 40]
    assert lrs == pytest.approx([1e-4, 8.9e-3, 6.7e-3, 4.5e-3, 2.3e-3], rel=1e-12)
    # the expert's own episode at the reference (policy_file None): the LRs the env applied
    curves = lr_curves(LocalBackend(workers=0), cfg, 0.01, None, progress=False)
    assert curves["0"]["step"] == steps and curves["0"]["lr"] == pytest.approx(lrs, rel=1e-6)
    record = {
        "round": 0,
        "action_error_validation": 0.1,
        "action_error_on_visited_before_fit": None,
    }
    plot_run(tmp_path, [record], curves, 0.01, cfg.schedule, (steps, lrs))
    with open(tmp_path / "plots" / "lr_curves.csv") as f:
        rows = list(csv.DictReader(f))
    drawn = {
        s: [(float(r["x"]), float(r["y"])) for r in rows if r["series"] == s]
        for s in {r["series"] for r in rows}
    }
    expert, policy = drawn["expert: linear_warmup at the reference 0.01"], drawn["k=0 (base 0.01)"]
    assert [x for x, _ in expert] == [x for x, _ in policy] == steps
    assert [y for _, y in expert] == pytest.approx([y for _, y in policy], rel=1e-6)
    # a last block shorter than the others ends at the budget
    assert expert_lr_curve(cfg.schedule, 0.01, 36, 8)[0] == [8, 16, 24, 32, 36]


def test_the_per_round_checks_read_validation_losses_of_model_selection_seeds_only(
    tmp_path, monkeypatch
):
    """The checks are seen while training: the test split is never read (a read raises
    here), and each check is the validation losses of its model-selection seeds' episodes."""

    def refuse(*args, **kwargs):
        raise AssertionError("the recipe read the test split")

    monkeypatch.setattr(TorchTrainee, "test_metrics", refuse)
    monkeypatch.setattr(QuadraticTrainee, "test_batches", refuse)
    # a folder of before: its expert check held test losses; kept aside, run again
    old = {"-3": {"final_val_loss": 1.0, "test_loss": 1.0, "diverged": 0}}
    write_json(tmp_path / "expert_check.json", old)
    metrics = train_tuningfree(config(rounds=0), tmp_path, progress=False)
    assert json.loads((tmp_path / "expert_check_test_split.json").read_text()) == old
    expert, check = metrics["expert_check"], metrics["rounds"][0]["check"]
    assert json.loads((tmp_path / "expert_check.json").read_text()) == expert
    assert set(expert) == set(check) == {"-3", "3"}
    assert all(set(row) == set(CHECK_FIELDS) for row in [*expert.values(), *check.values()])
    (seed,) = seeds.take("model_selection", 1)
    for k in (-3, 3):
        kwargs = (("base_lr", 0.01 * 2.0**k), ("base_lr_spread", 1.0), ("total_steps", 64))
        episode = rollout(RolloutItem(QUAD, kwargs, None, "linear_warmup", 0.01, seed))
        assert expert[str(k)] == {
            "best_val_loss": episode.best_val_loss,
            "final_val_loss": float(episode.val_losses[-1]),
            "diverged": 0,
        }


def test_the_config_module_imports_neither_stage_and_the_recipe_re_exports_it():
    code = (
        "import sys\n"
        "import experiments.tuningfree_config as c\n"
        "assert not {'experiments.tuningfree', 'experiments.tuningfree_ppo'} & set(sys.modules)\n"
        "import experiments.tuningfree_ppo as p\n"
        "assert 'experiments.tuningfree' not in sys.modules\n"
        "from experiments.tuningfree import TuningFreeConfig\n"
        "assert TuningFreeConfig is c.TuningFreeConfig is p.TuningFreeConfig\n"
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
