"""Experiments: the scripts' end-to-end jobs (BC, PPO, Q-learning, evaluation, LR sweep, plain run).
Public names load their module on first use: importing one module loads no other."""

from __future__ import annotations

from common.lazy import lazy_exports

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
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
