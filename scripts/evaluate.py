"""Learned schedules against tuned baselines on unseen seeds (``evaluation.harness``).

Each method (saved policies, the expert schedules with their base LR tuned on the tuning
seeds, Schedule-Free AdamW, Prodigy with cosine) trains the env's trainee on every final
seed; the test split is evaluated once at the end of each run. Writes into the run
folder: ``results.json`` (rliable IQMs with 95% CIs, paired differences, probability of
improvement and Holm-corrected verdicts against tuned cosine, the tuning tables),
``runs.csv`` (every final run), ``results.md`` (the table), ``plots/`` (CI bars, median
LR schedules and validation curves; PNG + CSV), ``runs/`` (one JSON per finished run)
and TensorBoard logs (``tb/``). The run folder is a new
``runs/evaluate/{env}__evaluate__{time}`` unless ``--out`` names one; re-running with
the same ``--out`` resumes it (finished runs are not run again; methods added to it are
labelled ``(added)``)::

    python scripts/evaluate.py --policies runs/.../bc_cosine.pt runs/.../ppo_final.pt
    python scripts/evaluate.py --env LRSchedule-GPT-v0 --total-steps 256 \\
        --n-final-seeds 5 --n-tuning-seeds 2 --lr-factors 0.25 0.5 1 2 4
    python scripts/evaluate.py --backend ray --ray-address HEAD:6379   # on a Ray cluster
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal, get_args

import tyro
from torch.utils.tensorboard import SummaryWriter

from common import seeds
from common.cli import parse
from envs.options import EnvOptions, check_env_ids
from evaluation.backends import make_backend
from evaluation.grid import Grid
from evaluation.harness import run_grid
from evaluation.methods import METHODS, MethodName, policy_method, policy_name
from evaluation.report import loss_score, write_report
from evaluation.store import new_run_folder


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
    methods: tuple[MethodName, ...] = get_args(MethodName)
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
        check_env_ids(*self.env)
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"--methods {unknown} invalid; valid: {', '.join(METHODS)}")
        for role, n in (("final_evaluation", self.n_final_seeds),
                        ("baseline_tuning", self.n_tuning_seeds)):  # fmt: skip
            if n < 1:
                raise ValueError(f"{n} {role} seeds asked; at least 1 is needed")
            seeds.take(role, n)  # more than the range holds: a ValueError naming it
        names = [*self.methods, *(policy_name(p) for p in self.policies)]
        if self.reference not in names:
            raise ValueError(
                f"--reference {self.reference!r} is not a method of this evaluation; "
                f"valid: {', '.join(names)}"
            )


def make_grid(args: Args) -> Grid:
    """The grid the arguments describe."""
    return Grid(
        envs=args.env,
        methods=tuple(METHODS[m] for m in args.methods)
        + tuple(policy_method(p) for p in args.policies),
        options=args.options.kwargs(),
        final_seeds=tuple(seeds.take("final_evaluation", args.n_final_seeds)),
        tuning_seeds=tuple(seeds.take("baseline_tuning", args.n_tuning_seeds)),
        lr_factors=args.lr_factors,
        reference=args.reference,
    )


def main(args: Args) -> dict:
    """Run the grid into its run folder (resuming it) and write the results there."""
    grid = make_grid(args)
    out = Path(args.out) if args.out else new_run_folder("runs/evaluate", args.env[0], "evaluate")
    print(f"run folder {out} (resume with --out {out})")
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
    results = write_report(out, grid.to_json(), result, seed=args.seed, extra={"timing": timing})
    print((out / "results.md").read_text())
    print(f"wrote {out}: results.json, runs.csv, results.md, plots/ ({timing})")
    return results


if __name__ == "__main__":
    main(parse(Args))
