"""Train one trainee at a constant learning rate and report its losses.

The plain training run that every learned schedule is compared with
(``experiments.trainee_job.train_trainee``). By default the MLP on the bundled digits
data, offline; ``--dataset`` defaults to the trainee's (digits for the image trainees,
tiny Shakespeare for the GPT)::

    python scripts/train_trainee.py --trainee mlp --dataset digits --total-steps 300
    python scripts/train_trainee.py --trainee gpt --total-steps 200

A dataset the trainee does not take (``--trainee gpt --dataset mnist``) is refused in
one line (exit status 2), before any work starts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated

import tyro

from common.cli import parse
from envs.options import DatasetName
from experiments.trainee_job import check_trainee_dataset, dataset_name, train_trainee
from trainees.factory import TraineeName


@dataclass(frozen=True)
class Args:
    """Train one trainee at a constant learning rate.

    Attributes:
        trainee: which model to train.
        dataset: its dataset (mnist | digits | ... for images; shakespeare_char | enwik8 |
            text8 | python_stdlib for gpt; none for quadratic). None: the trainee's default (digits; shakespeare_char).
        total_steps: optimizer steps (the training budget).
        lr_mult: learning rate as a multiple of the trainee's base_lr.
        eval_every: optimizer steps between validation evaluations.
        seed: seed of the run.
        out: root folder for run directories.
    """

    trainee: TraineeName = "mlp"
    dataset: DatasetName | None = None
    total_steps: Annotated[int, tyro.conf.arg(aliases=("--steps",))] = 300
    lr_mult: float = 1.0
    eval_every: int = 50
    seed: int = 0
    out: str = "runs"

    def __post_init__(self) -> None:
        check_trainee_dataset(self.trainee, self.dataset)

    @property
    def dataset_name(self) -> str | None:
        """The dataset trained on: ``dataset``, else the trainee's default (None: none)."""
        return dataset_name(self.trainee, self.dataset)


def main(args: Args) -> dict:
    """Train, log to TensorBoard, write ``losses.csv`` (every step), ``losses.png``, ``metrics.json``."""
    metrics = train_trainee(
        args.trainee,
        dataset=args.dataset,
        total_steps=args.total_steps,
        lr_mult=args.lr_mult,
        eval_every=args.eval_every,
        seed=args.seed,
        out=args.out,
        record=asdict(args),
    )
    print(f"best val loss {metrics['best_val_loss']:.4f}; results in {metrics['run_dir']}")
    return metrics


if __name__ == "__main__":
    main(parse(Args))
