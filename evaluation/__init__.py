"""Evaluation: methods x envs x seeds on local or Ray backends, resumable run folders, reports.
Also the LR sweep, the final-seed blocks of its plans and the suite's score. Public names
load their module on first use: importing one loads no other."""

from __future__ import annotations

from common.lazy import lazy_exports

_EXPORTS = {
    "backends": ("Backend", "LocalBackend", "RayBackend", "make_backend"),
    "compare": ("compare", "compare_to_start", "mean_abs_log_lr_ratio", "summarize_episodes"),
    "grid": (
        "Grid", "check_seeds", "choose_base_lrs", "env_base_lrs", "final_specs", "tuning_specs",
    ),
    "harness": ("run_grid",),
    "methods": ("METHODS", "Method", "MethodName", "policy_method", "policy_name"),
    "range_test": ("RangeTest", "pick_lr", "range_test_steps", "run_range_test", "smoothed_losses"),
    "reference_lrs": ("REFERENCE_LRS", "ReferenceLR", "reference_lr"),
    "report": ("loss_score", "markdown", "write_report"),
    "runs": ("RunSpec", "execute"),
    "store": ("RunStore", "added_after_results", "new_run_folder", "open_folder"),
    "sweep": (
        "K_VALUES", "TOLERANCE", "Sweep", "check_action_bounds", "check_pairs", "pair_differences",
        "run_sweep", "summarize_sweep", "sweep_from_plan",
    ),
    "sweep_report": ("plot_sweep", "sweep_markdown", "write_sweep_report"),
    "seed_blocks": ("LEGACY_PLANS", "block_conflicts", "check_block", "read_plans", "workload"),
    "suite_score": ("suite_score",),
}  # fmt: skip
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
