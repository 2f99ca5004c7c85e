"""Benchmarks: what the env, the trainees, K vectorised envs, the scheduler and a policy cost.
Public names load their module on first use: importing one module loads no other."""

from __future__ import annotations

from common.lazy import lazy_exports

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
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
