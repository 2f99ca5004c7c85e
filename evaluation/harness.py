"""The evaluation harness: methods x envs x seeds, each run through the same env machinery.

A *method* chooses the learning rate of a training run: a saved policy file (BC, PPO),
an expert schedule whose base LR is tuned on the tuning seeds, or another optimizer
(Schedule-Free AdamW, Prodigy) through the trainees' ``optimizer`` option. Every run
is one episode of ``LRScheduleEnv`` (:func:`envs.rollout.run_episode`), so every
method gets the same metrics; the test split is read once, after the episode has
ended (``Trainee.test_metrics``), and never reaches an observation or a reward.

A grid runs in two phases: the tuning runs (and the final runs of methods that need
no tuning), then the final runs of the tuned methods at the base LR each chose. Each
finished run is written to its own file in the run folder at once, so an interrupted
grid resumes where it stopped. Runs execute in local processes or as Ray tasks
(``evaluation.backends``); a run is a pure function of its
:class:`RunSpec`, so both give the same results on CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from evaluation.backends import Backend
from evaluation.grid import Grid, choose_base_lrs, env_base_lrs, final_specs, tuning_specs
from evaluation.store import RunStore, added_after_results, open_folder


def run_grid(
    grid: Grid,
    folder: str | Path,
    backend: Backend,
    *,
    progress: bool = True,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run the whole grid (resuming from ``folder``): tuning, then the final runs.

    Returns ``{"tuning": choose_base_lrs(...), "final": [final runs], "tune": [tuning
    runs], "base_lrs": {env: default base LR}, "preregistered": [method names],
    "added_after_results": [method names]}``.
    """
    store = RunStore(open_folder(folder, grid))
    added = added_after_results(folder, grid)
    base_lrs = env_base_lrs(grid)
    untuned = final_specs(grid, {}, tuned=False)
    first = store.run(
        tuning_specs(grid, base_lrs) + untuned,
        backend,
        desc="tuning + untuned methods",
        progress=progress,
        on_result=on_result,
    )
    tune_runs = first[: len(first) - len(untuned)]
    tuning = choose_base_lrs(grid, tune_runs)
    chosen = {(env, m): v["base_lr"] for env, ms in tuning.items() for m, v in ms.items()}
    tuned = store.run(
        final_specs(grid, chosen, tuned=True),
        backend,
        desc="tuned methods",
        progress=progress,
        on_result=on_result,
    )
    return {
        "tuning": tuning,
        "final": first[len(tune_runs) :] + tuned,
        "tune": tune_runs,
        "base_lrs": base_lrs,
        "preregistered": [m.name for m in grid.methods if m.name not in added],
        "added_after_results": added,
    }
