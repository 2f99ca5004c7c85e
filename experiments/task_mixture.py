"""Mixtures of tasks for the tuning-free recipe: further trainees, datasets or budgets,
each with its own reference LR, whose episodes join every round beside the main env's.

A mixture file (``experiments/mixtures/*.json``) lists its tasks; :func:`load_tasks` reads
it, :func:`check_tasks` checks that one policy can act in all of them (the same spaces as
the main env), :func:`task_kwargs` builds a task's ``gym.make`` options, and
:func:`per_task` summarises a mixed round per task.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from envs.config import ENV_OPTIONS
from envs.rollout import Episode
from envs.vec_env import check_same_spaces
from evaluation.suite import TrainingTask, check_held_out


@dataclass(frozen=True)
class MixTask:
    """A further task of a mixture: another trainee, dataset or budget, its own reference.

    Attributes:
        env_id: the registered env id.
        options: its ``gym.make`` options (dataset, total_steps, ...).
        reference_lr: the expert's LR on it (tuned cosine's; say where it came from in
            ``source``).
        source: how the reference LR was found (a tuning command and its result).
        label: the task's name in summaries (a sampled task's); by default one is made
            from the trainee, dataset and budget.
    """

    env_id: str
    options: dict[str, Any]
    reference_lr: float
    source: str = ""
    label: str = ""

    def __post_init__(self) -> None:
        if not (isinstance(self.reference_lr, int | float) and self.reference_lr > 0):
            raise ValueError(
                f"reference_lr={self.reference_lr!r} of task {self.env_id} "
                f"{self.options} is invalid; expected a number > 0"
            )
        if "base_lr" in self.options or "base_lr_spread" in self.options:
            raise ValueError(
                f"task {self.env_id} {self.options}: give its reference_lr, not "
                "base_lr or base_lr_spread (the recipe sets both)"
            )

    def name(self) -> str:
        """``label``, or a short one: the env id's trainee, the dataset and the budget."""
        if self.label:
            return self.label
        trainee = self.env_id.removeprefix("LRSchedule-").rsplit("-v", 1)[0]
        extra = [str(self.options[k]) for k in ("dataset", "preset") if k in self.options]
        steps = self.options.get("total_steps")
        return "-".join([trainee, *extra] + ([f"{steps}steps"] if steps else []))


def load_tasks(path: str | Path) -> tuple[MixTask, ...]:
    """The tasks of a mixture file: ``{"tasks": [{"env_id", "options", "reference_lr",
    "source"}, ...]}`` (other top-level keys are notes).

    Raises:
        ValueError: a missing or unknown key, naming the task and the valid keys.
    """
    if not Path(path).is_file():
        raise ValueError(f"mixture file {str(path)!r} does not exist (see experiments/mixtures/)")
    raw = json.loads(Path(path).read_text())
    if not isinstance(raw, dict) or not isinstance(raw.get("tasks"), list):
        raise ValueError(f"{path}: expected an object with a list under 'tasks'")
    valid = {f.name for f in dataclasses.fields(MixTask)}
    tasks = []
    for i, entry in enumerate(raw["tasks"]):
        keys = set(entry)
        if not keys <= valid or not {"env_id", "options", "reference_lr"} <= keys:
            raise ValueError(
                f"{path}: task {i} has keys {sorted(keys)}; required: env_id, "
                f"options, reference_lr; valid: {sorted(valid)}"
            )
        tasks.append(MixTask(**entry))
    return tuple(tasks)


def task_kwargs(
    task: MixTask, main_options: dict[str, Any], spread: float
) -> tuple[tuple[str, Any], ...]:
    """A further task's ``gym.make`` options (sorted pairs): the main env's env options
    (reward, steps_per_action, ...; not its trainee's), then the task's own, then its base
    LR (its reference, drawn within ``spread``)."""
    inherited = {k: v for k, v in main_options.items() if k in ENV_OPTIONS}
    return tuple(
        sorted(
            (
                inherited | task.options | {"base_lr": task.reference_lr, "base_lr_spread": spread}
            ).items()
        )
    )


def check_tasks(
    tasks: Sequence[MixTask], env: gym.Env, env_id: str, main_options: dict[str, Any], spread: float
) -> None:
    """Check that each further task builds, shares the main env's spaces (one policy
    acts in all of them) and its cadence: the same ``steps_per_action`` and
    ``eval_every``, so that an observation row and an action mean the same on every task;
    and that neither the main env nor any task is a held-out workload of the suite
    (``evaluation.suite.check_held_out``).

    Raises:
        ValueError: a task whose observation or action space, or whose cadence, differs
            from the main env's, naming both; a task (or the main env) on the held-out
            suite, naming the workload.
    """
    check_held_out(training_tasks(tasks, env_id, main_options))
    for t in tasks:
        other = gym.make(t.env_id, **dict(task_kwargs(t, main_options, spread)))
        try:
            where = f"task {t.name()} ({t.env_id} {t.options})"
            check_same_spaces(env, other, f"the main env {env_id}", where)
            mine, theirs = _cadence(env), _cadence(other)
            if mine != theirs:
                raise ValueError(
                    f"{where} runs at cadence {theirs}, the main env {env_id} at {mine}: "
                    "one cadence for the whole mixture (set steps_per_action and "
                    "eval_every in the task's options)"
                )
        finally:
            other.close()


def training_tasks(
    tasks: Sequence[MixTask], env_id: str, main_options: dict[str, Any]
) -> list[TrainingTask]:
    """The main env and each task of a mixture as the training tasks they are."""
    main = TrainingTask(env_id, main_options, "the main env")
    return [main, *(TrainingTask(t.env_id, t.options, f"task {t.name()}") for t in tasks)]


def _cadence(env: gym.Env) -> dict[str, int]:
    cfg = env.unwrapped.config
    return {"steps_per_action": cfg.steps_per_action, "eval_every": cfg.eval_every}


def per_task(episodes: Sequence[Episode], tasks: Sequence[MixTask | None]) -> dict[str, Any]:
    """Per task of a mixed round (None: the main env): its episodes, their mean best
    validation loss and how many diverged."""
    out: dict[str, Any] = {}
    for name in dict.fromkeys("main" if t is None else t.name() for t in tasks):
        rows = [
            e
            for e, t in zip(episodes, tasks, strict=True)
            if ("main" if t is None else t.name()) == name
        ]
        out[name] = {
            "episodes": len(rows),
            "best_val_loss": float(np.mean([e.best_val_loss for e in rows])),
            "diverged": sum(e.diverged for e in rows),
        }
    return out
