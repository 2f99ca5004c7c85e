"""Run a method list over the held-out suite, from a pre-registered suite plan.

    python scripts/run_suite.py --plan evaluation/plans/suite_v1_baselines.json \
        --out runs/suite/v1_baselines --workers 2 --threads 1

Each workload of the suite (``evaluation/suite.py``) is an LR-sensitivity sweep, from its
reference LR x 2^k, into ``out/<workload>/`` (its own ``results.md`` and plot). Then
``out/results.md`` (per workload the worst Δ vs tuned cosine, the Δ at each k; the mean
rank across workloads with its CI), ``out/results.json``, ``out/rows.csv`` and
``out/plots/suite_{delta,rank}.png`` (+ .csv). Interrupted, the same command resumes;
``--workloads`` runs only those named (the report covers every complete one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from common.cli import parse
from evaluation.backends import make_backend
from evaluation.seed_blocks import check_block
from experiments.suite_job import expand, read_suite_plan, suite_job


@dataclass(frozen=True)
class Args:
    """Run (or resume) a suite plan.

    Attributes:
        plan: the suite plan (``evaluation/plans/suite_*.json``): suite, version,
            methods, policies, final seeds.
        out: the run folder (a resume reopens it).
        workloads: run only these workloads (default: all, cheapest first).
        backend: local (processes) or ray (one Ray task per run).
        workers: local worker processes (Ray: CPUs), None for all cores.
        threads: torch threads per run (the same on both backends).
        ray_address: a Ray cluster's address (None starts a local instance).
        progress: a progress bar.
    """

    plan: str
    out: str
    workloads: tuple[str, ...] = ()
    backend: Literal["local", "ray"] = "local"
    workers: int | None = None
    threads: int = 1
    ray_address: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        plan, _ = read_suite_plan(self.plan)
        check_block(self.plan)
        expand(plan, self.workloads)


def main(args: Args) -> None:
    backend = make_backend(
        args.backend, workers=args.workers, threads=args.threads, ray_address=args.ray_address
    )
    try:
        results = suite_job(
            args.plan,
            args.out,
            backend,
            workloads=args.workloads,
            progress=args.progress,
            backend_name=args.backend,
        )
    finally:
        backend.close()
    done = ", ".join(results["complete"]) or "none"
    print(
        f"complete: {done}; {results['wall_seconds_all_invocations']:.0f} s in all: "
        f"{args.out}/results.md"
    )


if __name__ == "__main__":
    main(parse(Args))
