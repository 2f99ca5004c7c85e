"""Baseline (warm-up + cosine) vs tabular Q-learning LR control on character corpora.

For each corpus whose data is present locally (tiny Shakespeare; enwik8 and text8 when
found), each run type trains the GPT on several seeds (``experiments.qlearning.run_experiment``).
A corpus that is not present is skipped with a message, never downloaded, unless
``--download`` is given. A Q-learning run type keeps one table across its seeds. Writes
per dataset ``results_<dataset>.json``, ``results_<dataset>.md`` (mean ± standard error
over seeds), ``runs_<dataset>.csv`` and the plots ``train_loss_<dataset>.png``,
``val_loss_<dataset>.png`` and ``lr_<dataset>.png`` (each with its CSV)::

    python scripts/run_experiment.py --n-seeds 3
    python scripts/run_experiment.py --dataset enwik8 --download   # fetch enwik8 if missing
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated

import tyro

from common.cli import parse
from experiments.qlearning import RUN_TYPES, RunType, check_experiment_args, run_experiment
from trainees.data.chars import CORPORA, CorpusName
from trainees.language import GPTPreset


@dataclass(frozen=True)
class Args:
    """Baseline vs Q-learning.

    Attributes:
        dataset: corpora to try; those not present locally are skipped with a message
            (downloaded only with ``--download``).
        download: download a corpus that is not present locally (as the GPT trainee does
            by default, unless ``$LRGYM_OFFLINE`` is set).
        preset: GPT preset (None: small on a GPU, tiny on a CPU).
        runs: run types (``experiments.qlearning.RUN_TYPES``).
        n_seeds: training runs per run type (seeds 0, 1, ...).
        total_steps: optimizer steps per training run.
        interval: optimizer steps between evaluations, where the Q-agent acts.
        warmup: warm-up fraction of the cosine baseline.
        out: root folder of run directories.
    """

    dataset: Annotated[tuple[CorpusName, ...], tyro.conf.arg(aliases=("--datasets",))] = CORPORA
    download: bool = False
    preset: GPTPreset | None = None
    runs: tuple[RunType, ...] = tuple(RUN_TYPES)
    n_seeds: Annotated[int, tyro.conf.arg(aliases=("--seeds",))] = 3
    total_steps: int = 2000
    interval: int = 100
    warmup: float = 0.05
    out: str = "runs"

    def __post_init__(self) -> None:
        check_experiment_args(self.dataset, self.runs, self.n_seeds)


def main(args: Args) -> dict:
    """Run every dataset whose data is present (or, with ``download``, can be fetched)."""
    folder, report = run_experiment(
        args.dataset,
        download=args.download,
        preset=args.preset,
        runs=args.runs,
        n_seeds=args.n_seeds,
        total_steps=args.total_steps,
        interval=args.interval,
        warmup=args.warmup,
        out=args.out,
        record=asdict(args),
    )
    print(f"results in {folder}")
    return report


if __name__ == "__main__":
    main(parse(Args))
