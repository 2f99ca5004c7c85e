"""Experiments: the scripts' end-to-end jobs (BC, PPO, Q-learning, evaluation, LR sweep, plain run).
Public names load their module on first use: importing one module loads no other."""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "bc_pipeline": ("check_bc_args", "demo_sets", "train_bc"),
    "evaluate_job": ("check_evaluation_args", "evaluate", "make_grid"),
    "lr_sweep": ("read_plan", "sweep_job"),
    "ppo_job": (
        "COUNT_ARGS", "RESUME_FLAGS", "check_finetune_args", "expert_of", "finetune",
        "finetune_run", "plot_run", "policy_digest", "resumed_args",
    ),
    "qlearning": (
        "METRICS", "QLEARNING_REWARDS", "RUN_TYPES", "RunType", "check_experiment_args",
        "check_qlearning_reward", "markdown_table", "mean_curves", "mean_se", "qlearning_options",
        "run_experiment", "run_options", "summarize", "train_qlearning",
    ),
    "trainee_job": (
        "TRAINEE_DATASETS", "check_trainee_dataset", "dataset_name", "plot_losses", "train_trainee",
    ),
}  # fmt: skip
_MODULE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE)


def __getattr__(name: str) -> Any:
    if name not in _MODULE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_MODULE[name]}"), name)
