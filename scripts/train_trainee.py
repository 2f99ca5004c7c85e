"""Train one trainee at a constant learning rate and report its losses.

The plain training run that every learned schedule is compared with. By default the
MLP on the bundled digits data, offline; ``--dataset`` defaults to the trainee's
(digits for the image trainees, tiny Shakespeare for the GPT)::

    python scripts/train_trainee.py --trainee mlp --dataset digits --total-steps 300
    python scripts/train_trainee.py --trainee gpt --total-steps 200

A dataset the trainee does not take (``--trainee gpt --dataset mnist``) is refused in
one line (exit status 2), before any work starts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import tyro
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from common.cli import parse
from common.files import run_dir, write_csv, write_json
from common.tensorboard import log_hyperparameters
from envs.options import DatasetName
from trainees import TRAINEES, make_trainee
from trainees.data.chars import CORPORA
from trainees.factory import TraineeName

# the datasets each trainee takes, its default first: the bundled digits for the image
# trainees (offline), the GPT's own default corpus; the quadratic takes none
TRAINEE_DATASETS: dict[str, tuple[str, ...]] = {
    "quadratic": (),
    "mlp": ("digits", "mnist"),
    "resnet18": ("digits", "mnist"),
    "gpt": CORPORA,
}


@dataclass(frozen=True)
class Args:
    """Train one trainee at a constant learning rate.

    Attributes:
        trainee: which model to train.
        dataset: its dataset (mnist | digits for images; shakespeare_char | enwik8 | text8 for
            gpt; none for quadratic). None: the trainee's default (digits; shakespeare_char).
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
        if self.trainee not in TRAINEES:
            raise ValueError(f"--trainee {self.trainee!r} is invalid; valid: {', '.join(TRAINEES)}")
        valid = TRAINEE_DATASETS[self.trainee]
        if self.dataset is not None and self.dataset not in valid:
            raise ValueError(
                f"--dataset {self.dataset!r} is not a dataset of trainee {self.trainee!r}; "
                f"valid: {', '.join(valid) if valid else 'none (omit --dataset)'}"
            )

    @property
    def dataset_name(self) -> str | None:
        """The dataset trained on: ``dataset``, else the trainee's default (None: none)."""
        return self.dataset or next(iter(TRAINEE_DATASETS[self.trainee]), None)


def main(args: Args) -> dict:
    """Train, log to TensorBoard, write ``losses.csv`` (every step), ``losses.png``, ``metrics.json``."""
    dataset = args.dataset_name
    options = {"total_steps": args.total_steps} | ({"dataset": dataset} if dataset else {})
    trainee = make_trainee(args.trainee, **options)
    trainee.reset(args.seed)
    lr = args.lr_mult * trainee.base_lr
    label = f"{args.trainee}-{dataset}" if dataset else args.trainee
    folder = run_dir(args.out, label, "train_trainee", args.seed)
    writer = SummaryWriter(folder)
    log_hyperparameters(writer, args)
    rows = [{"step": 0, "train_loss": "", "val_loss": trainee.evaluate()}]  # one per step
    print(f"step {0:5d}  val {rows[0]['val_loss']:.4f}")
    steps = range(1, args.total_steps + 1)
    for step in tqdm(steps, desc=f"{args.trainee} lr={lr:.2e}", leave=False):
        stats = trainee.train_step(lr)
        writer.add_scalar("train/loss", stats.loss, step)
        rows.append({"step": step, "train_loss": stats.loss, "val_loss": ""})
        if not stats.finite:
            print(f"step {step:5d}  training diverged (non-finite loss or gradient)")
            break
        if step % args.eval_every == 0 or step == args.total_steps:
            rows[-1]["val_loss"] = val = trainee.evaluate()
            writer.add_scalar("val/loss", val, step)
            tqdm.write(f"step {step:5d}  train {stats.loss:.4f}  val {val:.4f}")
    writer.close()
    evals = [r for r in rows if r["val_loss"] != ""]
    metrics = {
        "args": asdict(args),
        "dataset": dataset,
        "final_train_loss": rows[-1]["train_loss"],
        "best_val_loss": min(r["val_loss"] for r in evals),
        "run_dir": str(folder),
    }
    write_csv(folder / "losses.csv", rows)
    write_json(folder / "metrics.json", metrics)
    title = f"{args.trainee} on {dataset}" if dataset else args.trainee
    _plot(rows, folder / "losses.png", f"{title}, lr={lr:.2e}")
    print(f"best val loss {metrics['best_val_loss']:.4f}; results in {folder}")
    return metrics


def _plot(rows: list[dict], path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    train = [r for r in rows if r["train_loss"] != ""]
    evals = [r for r in rows if r["val_loss"] != ""]
    ax.plot([r["step"] for r in train], [r["train_loss"] for r in train], lw=0.8,
            alpha=0.7, label="train (minibatch)")  # fmt: skip
    ax.plot([r["step"] for r in evals], [r["val_loss"] for r in evals], marker="o",
            label="validation")  # fmt: skip
    ax.set(xlabel="optimizer step", ylabel="loss", title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main(parse(Args))
