"""Benchmarks: what the env, the trainees, K vectorised envs, the scheduler and a policy cost.
Public names load their module on first use: importing one module loads no other."""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "env_overhead": ("benchmark_envs", "env_episode", "env_overhead", "plain_loop"),
    "overhead": ("benchmark_scheduler", "scheduler_overhead"),
    "policy": ("benchmark_policy", "inference_cost", "policy_env"),
    "throughput": (
        "METHODS", "BatchedOptimizer", "VecMethod", "add_speedups", "batched_floor",
        "benchmark_vec_envs", "check_vec_args", "describe_step_profile", "make_vec",
        "measure_id", "measure_methods", "measure_throughput", "memory_per_env",
        "plot_throughput", "step_profile",
    ),
    "trainee_speed": (
        "BENCHMARKS", "BenchName", "benchmark_trainees", "check_benchmarks", "trainee_speed",
    ),
}  # fmt: skip
_MODULE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE)


def __getattr__(name: str) -> Any:
    if name not in _MODULE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_MODULE[name]}"), name)
