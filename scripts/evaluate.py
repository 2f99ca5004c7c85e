"""Learned schedules against tuned baselines on unseen seeds (``agents.harness``).

Each method (saved policies, the expert schedules with their base LR tuned on the tuning
seeds, Schedule-Free AdamW, Prodigy with cosine) trains the env's trainee on every final
seed; the test split is evaluated once at the end of each run. Writes into ``--out``:
``results.json`` (rliable IQMs with 95% CIs, paired differences and probability of
improvement against tuned cosine, the tuning tables), ``runs.csv`` (every final run),
``results.md`` (the table), ``plots/`` (CI bars, median LR schedules and validation
curves; PNG + CSV), ``runs/`` (one JSON per finished run) and TensorBoard logs (``tb/``).
Re-running the same command resumes: finished runs are not run again::

    python scripts/evaluate.py --policies runs/.../bc_cosine.pt runs/.../ppo_final.pt
    python scripts/evaluate.py --envs LRSchedule-GPT-v0 --options.total-steps 256 \\
        --final-seeds 5 --tuning-seeds 2 --lr-factors 0.25 0.5 1 2 4
    python scripts/evaluate.py --backend ray --ray-address HEAD:6379   # on a Ray cluster
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import tyro
from torch.utils.tensorboard import SummaryWriter

from agents import seeds
from agents.backends import make_backend
from agents.harness import METHODS, Grid, policy_method, run_grid
from agents.report import loss_score, write_report
from envs.options import EnvOptions


@dataclass(frozen=True)
class Args:
    """Evaluate methods x envs x seeds.

    Attributes:
        envs: registered env ids.
        options: env options for every env (None keeps the id's default).
        methods: named methods (constant, cosine, cosine_warmup, linear_warmup, polynomial,
            wsd, schedulefree, prodigy_cosine).
        policies: saved policy files, as ``name=path`` or ``path`` (named after the file).
        final_seeds: final-evaluation seeds (10000, 10001, ...).
        tuning_seeds: base-LR tuning seeds (2000, 2001, ...).
        lr_factors: the tuning grid, as multiples of the env's base LR.
        reference: the method of the paired differences (tuned cosine).
        backend: local (processes) or ray (one Ray task per run).
        workers: local processes, or the CPUs of a local Ray instance (default: CPUs / threads).
        threads: torch threads per run (the same on both backends, for equal results).
        ray_address: join this Ray cluster (e.g. HEAD:6379 or auto) instead of starting one.
        out: the run folder; re-running with the same arguments resumes it.
        progress: a progress bar over runs.
    """

    envs: tuple[str, ...] = ("LRSchedule-MLP-v0",)
    options: EnvOptions = field(default_factory=EnvOptions)
    methods: tuple[str, ...] = tuple(METHODS)
    policies: tuple[str, ...] = ()
    final_seeds: int = 10
    tuning_seeds: int = 3
    lr_factors: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
    reference: str = "cosine"
    backend: Literal["local", "ray"] = "local"
    workers: int | None = None
    threads: int = 1
    ray_address: str | None = None
    out: str = "runs/evaluate"
    progress: bool = True


def make_grid(args: Args) -> Grid:
    """The grid the arguments describe (a ValueError names an unknown method)."""
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; valid: {', '.join(METHODS)}")
    return Grid(
        envs=args.envs,
        methods=tuple(METHODS[m] for m in args.methods)
        + tuple(policy_method(p) for p in args.policies),
        options=args.options.kwargs(),
        final_seeds=tuple(seeds.take("final_evaluation", args.final_seeds)),
        tuning_seeds=tuple(seeds.take("baseline_tuning", args.tuning_seeds)),
        lr_factors=args.lr_factors,
        reference=args.reference,
    )


def main(args: Args) -> dict:
    grid = make_grid(args)
    out = Path(args.out)
    backend = make_backend(
        args.backend, workers=args.workers, threads=args.threads, ray_address=args.ray_address
    )
    writer = SummaryWriter(str(out / "tb"))

    def log(run: dict) -> None:  # each final run's test loss, by method and seed
        if run["phase"] == "final":
            tag = f"{run['env_id']}/test_loss/{run['method']}"
            writer.add_scalar(tag, loss_score(run), run["seed"])

    t0 = time.perf_counter()
    try:
        result = run_grid(grid, out, backend, progress=args.progress, on_result=log)
    finally:
        backend.close()
        writer.close()
    runs = result["tune"] + result["final"]
    timing = {
        "wall_seconds_last_invocation": time.perf_counter() - t0,
        "run_seconds_total": sum(r["wall_seconds"] for r in runs),
        "runs": len(runs),
        "backend": args.backend,
        "workers": backend.workers,
        "threads": args.threads,
    }
    results = write_report(out, grid.to_json(), result, extra={"timing": timing})
    print((out / "results.md").read_text())
    print(f"wrote {out}: results.json, runs.csv, results.md, plots/ ({timing})")
    return results


if __name__ == "__main__":
    main(tyro.cli(Args))
