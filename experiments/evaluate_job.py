"""The evaluation job: learned schedules against tuned baselines on unseen seeds.

:func:`evaluate` (behind ``scripts/evaluate.py``) runs a methods x envs x seeds grid
(``evaluation.harness.run_grid``) into a run folder, resuming it, on a local or a Ray
backend, and writes the report there (``evaluation.report.write_report``): ``results.json``,
``runs.csv``, ``results.md``, ``plots/``, ``runs/`` (one JSON per finished run) and
TensorBoard logs (``tb/``). :func:`check_evaluation_args` refuses, before any work, what
the grid would fail on.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter

from common import seeds
from envs.options import check_env_ids
from evaluation.backends import make_backend
from evaluation.grid import Grid
from evaluation.harness import run_grid
from evaluation.methods import METHODS, policy_method, policy_name
from evaluation.report import loss_score, write_report
from evaluation.store import new_run_folder


def check_evaluation_args(
    envs: Sequence[str],
    methods: Sequence[str],
    policies: Sequence[str] = (),
    *,
    n_final_seeds: int = 10,
    n_tuning_seeds: int = 3,
    reference: str = "cosine",
) -> None:
    """Raise ValueError (naming the valid values) for an unknown env id or method, a seed
    count out of its range, or a reference that is not one of the methods or policies."""
    check_env_ids(*envs)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"--methods {unknown} invalid; valid: {', '.join(METHODS)}")
    for role, n in (("final_evaluation", n_final_seeds), ("baseline_tuning", n_tuning_seeds)):
        if n < 1:
            raise ValueError(f"{n} {role} seeds asked; at least 1 is needed")
        seeds.take(role, n)  # more than the range holds: a ValueError naming it
    names = [*methods, *(policy_name(p) for p in policies)]
    if reference not in names:
        raise ValueError(
            f"--reference {reference!r} is not a method of this evaluation; "
            f"valid: {', '.join(names)}"
        )


def make_grid(
    envs: Sequence[str],
    methods: Sequence[str],
    policies: Sequence[str] = (),
    *,
    options: dict[str, Any] | None = None,
    n_final_seeds: int = 10,
    n_tuning_seeds: int = 3,
    lr_factors: Sequence[float] = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0),
    reference: str = "cosine",
) -> Grid:
    """The grid of named ``methods`` and saved ``policies`` (``name=path`` or ``path``) on
    ``envs``, with the first seeds of the final-evaluation and baseline-tuning ranges."""
    return Grid(
        envs=tuple(envs),
        methods=tuple(METHODS[m] for m in methods) + tuple(policy_method(p) for p in policies),
        options=dict(options or {}),
        final_seeds=tuple(seeds.take("final_evaluation", n_final_seeds)),
        tuning_seeds=tuple(seeds.take("baseline_tuning", n_tuning_seeds)),
        lr_factors=tuple(lr_factors),
        reference=reference,
    )


def evaluate(
    envs: Sequence[str],
    methods: Sequence[str],
    policies: Sequence[str] = (),
    *,
    options: dict[str, Any] | None = None,
    n_final_seeds: int = 10,
    n_tuning_seeds: int = 3,
    lr_factors: Sequence[float] = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0),
    reference: str = "cosine",
    out: str | Path | None = None,
    backend: str = "local",
    workers: int | None = None,
    threads: int = 1,
    ray_address: str | None = None,
    seed: int = 0,
    progress: bool = True,
) -> tuple[Path, dict[str, Any]]:
    """Run the grid of :func:`make_grid` into its run folder (resuming it); write the report there.

    Prints the run folder first and the results table (``results.md``) at the end; each
    final run's test loss goes to TensorBoard (``tb/``) as it finishes.

    Args:
        envs, methods, policies, options, n_final_seeds, n_tuning_seeds, lr_factors,
            reference: the grid, as :func:`make_grid`.
        out: the run folder; one that holds runs is resumed (default: a new
            ``runs/evaluate/{first env}__evaluate__{time}``).
        backend: ``local`` (processes) or ``ray`` (one Ray task per run).
        workers: local processes, or the CPUs of a local Ray instance.
        threads: torch threads per run.
        ray_address: join this Ray cluster instead of starting one.
        seed: seed of the statistics' resampling (bootstrap CIs, sign-flip tests).
        progress: a progress bar over runs.

    Returns:
        The run folder, and the results written to its ``results.json`` (with
        ``timing``: wall and run seconds, runs, backend, workers, threads).
    """
    grid = make_grid(
        envs,
        methods,
        policies,
        options=options,
        n_final_seeds=n_final_seeds,
        n_tuning_seeds=n_tuning_seeds,
        lr_factors=lr_factors,
        reference=reference,
    )
    out = Path(out) if out else new_run_folder("runs/evaluate", grid.envs[0], "evaluate")
    print(f"run folder {out} (resume with --out {out})")
    runner = make_backend(backend, workers=workers, threads=threads, ray_address=ray_address)
    writer = SummaryWriter(str(out / "tb"))

    def log(run: dict) -> None:  # each final run's test loss, by method and seed
        if run["phase"] == "final":
            tag = f"{run['env_id']}/test_loss/{run['method']}"
            writer.add_scalar(tag, loss_score(run), run["seed"])

    t0 = time.perf_counter()
    try:
        result = run_grid(grid, out, runner, progress=progress, on_result=log)
    finally:
        runner.close()
        writer.close()
    runs = result["tune"] + result["final"]
    timing = {
        "wall_seconds_last_invocation": time.perf_counter() - t0,
        "run_seconds_total": sum(r["wall_seconds"] for r in runs),
        "runs": len(runs),
        "backend": backend,
        "workers": runner.workers,
        "threads": threads,
    }
    results = write_report(out, grid.to_json(), result, seed=seed, extra={"timing": timing})
    print((out / "results.md").read_text())
    return out, results
