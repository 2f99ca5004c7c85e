"""Mixtures of tasks: files, their checks, each task's options, per-task summaries."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from envs.config import EnvConfig
from envs.rollout import Episode
from experiments.task_mixture import MixTask, check_tasks, load_tasks, per_task, task_kwargs

QUAD = "LRSchedule-Quadratic-v0"


def test_tasks_inherit_the_main_envs_env_options_not_its_trainees():
    main = {"total_steps": 64, "reward": "val_improvement", "eval_every": 8, "dim": 3}
    own = MixTask(QUAD, {"total_steps": 96, "eval_every": 16}, reference_lr=0.02)
    assert dict(task_kwargs(own, main, 4.0)) == {
        "total_steps": 96,
        "reward": "val_improvement",
        "eval_every": 16,  # the task's wins
        "base_lr": 0.02,
        "base_lr_spread": 4.0,
    }


def test_per_task_summarises_each_tasks_episodes():
    def episode(best: float, diverged: bool = False) -> Episode:
        info = {"best_val_loss": best, "diverged": diverged}
        return Episode(0, np.zeros((2, 1)), np.zeros((1, 1)), np.zeros(1), [info])

    other = MixTask(QUAD, {"total_steps": 96}, reference_lr=0.02)
    out = per_task([episode(1.0), episode(3.0), episode(0.5, True)], [None, None, other])
    assert out == {
        "main": {"episodes": 2, "best_val_loss": 2.0, "diverged": 0},
        "Quadratic-96steps": {"episodes": 1, "best_val_loss": 0.5, "diverged": 1},
    }


def test_mixture_files_and_tasks_are_checked(tmp_path):
    good = tmp_path / "mix.json"
    good.write_text(
        json.dumps(
            {
                "notes": "x",
                "tasks": [
                    {
                        "env_id": QUAD,
                        "options": {"total_steps": 96},
                        "reference_lr": 0.02,
                        "source": "s",
                    }
                ],
            }
        )
    )
    assert load_tasks(good) == (MixTask(QUAD, {"total_steps": 96}, 0.02, "s"),)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"tasks": [{"env_id": QUAD, "options": {}, "lr": 0.02}]}))
    with pytest.raises(
        ValueError,
        match=r"task 0 has keys \['env_id', 'lr', 'options'\]; "
        "required: env_id, options, reference_lr",
    ):
        load_tasks(bad)
    with pytest.raises(ValueError, match=r"reference_lr=-1 of task .* expected a number > 0"):
        MixTask(QUAD, {}, -1)
    with pytest.raises(ValueError, match="give its reference_lr, not base_lr"):
        MixTask(QUAD, {"base_lr": 0.1}, 0.1)


def test_a_task_at_another_cadence_is_refused_naming_both():
    main = gym.make(QUAD, total_steps=64, steps_per_action=8, eval_every=16)
    same = MixTask(QUAD, {"total_steps": 96}, reference_lr=0.02)  # the registered 8 / 16
    check_tasks([same], main, QUAD, {"total_steps": 64}, 4.0)
    other = MixTask(QUAD, {"total_steps": 96, "eval_every": 32}, reference_lr=0.02)
    with pytest.raises(
        ValueError,
        match=r"task Quadratic-96steps .* runs at cadence \{'steps_per_action': 8, "
        r"'eval_every': 32\}, the main env LRSchedule-Quadratic-v0 at "
        r"\{'steps_per_action': 8, 'eval_every': 16\}: one cadence",
    ):
        check_tasks([other], main, QUAD, {"total_steps": 64}, 4.0)


def test_the_shipped_mixture_runs_every_task_at_the_main_envs_cadence():
    tasks = load_tasks(Path(__file__).parents[2] / "experiments/mixtures/tuningfree_mixed.json")
    main = EnvConfig()  # the main env (LRSchedule-MLP-v0) registers no cadence of its own
    defaults = {"steps_per_action": main.steps_per_action, "eval_every": main.eval_every}
    for t in tasks:
        registered = gym.spec(t.env_id).kwargs
        cadence = {k: t.options.get(k, registered.get(k, v)) for k, v in defaults.items()}
        assert cadence == defaults, t.name()


def test_the_four_task_mixtures_v1_twin_is_the_same_tasks_observed_through_v1():
    folder = Path(__file__).parents[2] / "experiments/mixtures"
    v0, v1 = (load_tasks(folder / f) for f in ("tuningfree_mixed.json", "tuningfree_mixed_v1.json"))
    assert [t.env_id.replace("-v0", "-v1") for t in v0] == [t.env_id for t in v1]
    assert [(t.options, t.reference_lr) for t in v0] == [(t.options, t.reference_lr) for t in v1]
    assert all(gym.spec(t.env_id).kwargs["observation"] == "v1" for t in v1)
