"""Learned schedules against tuned baselines on unseen seeds (``experiments.evaluate_job``).

Writes ``results.json``, ``runs.csv``, ``results.md``, ``plots/``, ``runs/`` and ``tb/`` into
a new ``runs/evaluate/{env}__evaluate__{time}``, or into ``--out``, resuming it::

    python scripts/evaluate.py --policies runs/.../bc_cosine.pt runs/.../ppo_final.pt
    python scripts/evaluate.py --env LRSchedule-GPT-v0 --total-steps 256 --n-final-seeds 5
    python scripts/evaluate.py --backend ray --ray-address HEAD:6379   # on a Ray cluster
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

import tyro

from common.cli import parse
from envs.options import EnvOptions
from evaluation.methods import DEFAULT_METHODS, MethodName
from experiments.evaluate_job import check_evaluation_args, evaluate


@dataclass(frozen=True)
class Args:
    """Evaluate methods x envs x seeds.

    Attributes:
        env: registered env ids (alias ``--envs``).
        options: env options for every env, as top-level flags (``--total-steps``,
            ``--dataset``, ...; None keeps the id's default).
        methods: named methods (``evaluation.methods.METHODS``).
        policies: saved policy files, as ``name=path`` or ``path`` (named after the file).
        n_final_seeds: how many final-evaluation seeds (10000, 10001, ...; alias
            ``--final-seeds``).
        n_tuning_seeds: how many base-LR tuning seeds (2000, 2001, ...; alias
            ``--tuning-seeds``).
        lr_factors: the tuning grid, as multiples of the env's base LR.
        reference: the method every other is compared with (tuned cosine); one of
            ``--methods`` or a policy's name.
        backend: local (processes) or ray (one Ray task per run).
        workers: local processes, or the CPUs of a local Ray instance (default: CPUs / threads).
        threads: torch threads per run (the same on both backends, for equal results).
        ray_address: join this Ray cluster (e.g. HEAD:6379 or auto) instead of starting one.
        seed: seed of the statistics' resampling (bootstrap CIs, sign-flip tests).
        out: the run folder; re-running with the same ``--out`` resumes it (default: a new
            ``runs/evaluate/{first env}__evaluate__{time}``).
        progress: a progress bar over runs.
    """

    env: Annotated[tuple[str, ...], tyro.conf.arg(aliases=("--envs",))] = ("LRSchedule-MLP-v0",)
    options: Annotated[EnvOptions, tyro.conf.OmitArgPrefixes] = field(default_factory=EnvOptions)
    methods: tuple[MethodName, ...] = DEFAULT_METHODS
    policies: tuple[str, ...] = ()
    n_final_seeds: Annotated[int, tyro.conf.arg(aliases=("--final-seeds",))] = 10
    n_tuning_seeds: Annotated[int, tyro.conf.arg(aliases=("--tuning-seeds",))] = 3
    lr_factors: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
    reference: str = "cosine"
    backend: Literal["local", "ray"] = "local"
    workers: int | None = None
    threads: int = 1
    ray_address: str | None = None
    seed: int = 0
    out: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        check_evaluation_args(
            self.env,
            self.methods,
            self.policies,
            reference=self.reference,
            n_final_seeds=self.n_final_seeds,
            n_tuning_seeds=self.n_tuning_seeds,
        )


def main(args: Args) -> dict:
    """Run the grid into its run folder (resuming it) and write the results there."""
    out, results = evaluate(
        args.env,
        args.methods,
        args.policies,
        options=args.options.kwargs(),
        n_final_seeds=args.n_final_seeds,
        n_tuning_seeds=args.n_tuning_seeds,
        lr_factors=args.lr_factors,
        reference=args.reference,
        out=args.out,
        backend=args.backend,
        workers=args.workers,
        threads=args.threads,
        ray_address=args.ray_address,
        seed=args.seed,
        progress=args.progress,
    )
    print(f"wrote {out}: results.json, runs.csv, results.md, plots/ ({results['timing']})")
    return results


if __name__ == "__main__":
    main(parse(Args))
