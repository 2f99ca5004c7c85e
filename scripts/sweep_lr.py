"""The LR-sensitivity sweep of a pre-registered plan: every method from reference LR x 2^k.

    python scripts/sweep_lr.py --plan evaluation/plans/lr_sweep_mlp_mnist.json \
        --out runs/sweep/mlp_mnist --workers 2 --threads 1

Interrupted, the same command resumes without re-running finished runs. Writes
``results.md`` (tables), ``results.json``, ``runs.csv`` and ``plots/sweep.png`` (+ .csv).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from common.cli import parse
from evaluation.backends import make_backend
from experiments.lr_sweep import check_arguments, sweep_job


@dataclass(frozen=True)
class Args:
    """Run (or resume) an LR-sensitivity sweep.

    Attributes:
        plan: the pre-registration file (``evaluation/plans/*.json``): env, options,
            methods, k values, final seeds, reference LR.
        out: the run folder (a resume reopens it).
        add_methods: methods run beside the plan's, labelled as added.
        reuse: other sweep folders whose finished runs of this sweep (same run key) are
            copied instead of run again.
        backend: local (processes) or ray (one Ray task per run).
        workers: local worker processes (Ray: CPUs), None for all cores.
        threads: torch threads per run (the same on both backends).
        ray_address: a Ray cluster's address (None starts a local instance).
        progress: a progress bar.
        pairs: ``A:B`` pairs of the sweep's methods: the report adds A - B at every k,
            paired on seeds (an ablation; runs nothing more).
    """

    plan: str
    out: str
    add_methods: tuple[str, ...] = ()
    reuse: tuple[str, ...] = ()
    backend: Literal["local", "ray"] = "local"
    workers: int | None = None
    threads: int = 1
    ray_address: str | None = None
    progress: bool = True
    pairs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_arguments(self.plan, self.add_methods, self.pairs)


def main(args: Args) -> None:
    backend = make_backend(
        args.backend, workers=args.workers, threads=args.threads, ray_address=args.ray_address
    )
    try:
        results = sweep_job(
            args.plan,
            args.out,
            backend,
            add_methods=args.add_methods,
            reuse=args.reuse,
            progress=args.progress,
            backend_name=args.backend,
            pairs=args.pairs,
        )
    finally:
        backend.close()
    print(
        f"{results['runs']} runs ({results['runs_this_invocation']} this time, "
        f"{results['wall_seconds_this_invocation']:.0f} s): {args.out}/results.md"
    )


if __name__ == "__main__":
    main(parse(Args))
