"""Train one trainee at a constant learning rate and report its losses.

The plain training run that every learned schedule is compared with. ``make demo``
runs it on the bundled digits data, offline::

    python scripts/train_trainee.py --trainee mlp --dataset digits --steps 300
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import tyro
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from agents.tensorboard import log_hyperparameters
from trainees import TRAINEES, make_trainee
from trainees.files import run_dir, write_csv, write_json


@dataclass(frozen=True)
class Args:
    """Train one trainee at a constant learning rate.

    Attributes:
        trainee: which model to train.
        dataset: its dataset (mnist | digits for images; shakespeare_char | enwik8 | text8 for gpt).
        steps: optimizer steps.
        lr_mult: learning rate as a multiple of the trainee's base_lr.
        eval_every: optimizer steps between validation evaluations.
        seed: seed of the run.
        out: root folder for run directories.
    """

    trainee: str = "mlp"
    dataset: str | None = "digits"
    steps: int = 300
    lr_mult: float = 1.0
    eval_every: int = 50
    seed: int = 0
    out: str = "runs"


def main(args: Args) -> dict:
    """Train, log to TensorBoard, write ``losses.csv`` (every step), ``losses.png``, ``metrics.json``."""
    if args.trainee not in TRAINEES:
        raise ValueError(f"--trainee {args.trainee!r} is invalid; valid: {', '.join(TRAINEES)}")
    options = {"total_steps": args.steps}
    if args.trainee != "quadratic" and args.dataset is not None:
        options["dataset"] = args.dataset
    trainee = make_trainee(args.trainee, **options)
    trainee.reset(args.seed)
    lr = args.lr_mult * trainee.base_lr
    folder = run_dir(args.out, f"{args.trainee}-{args.dataset}", "train_trainee", args.seed)
    writer = SummaryWriter(folder)
    log_hyperparameters(writer, args)
    rows = [{"step": 0, "train_loss": "", "val_loss": trainee.evaluate()}]  # one per step
    print(f"step {0:5d}  val {rows[0]['val_loss']:.4f}")
    for step in tqdm(range(1, args.steps + 1), desc=f"{args.trainee} lr={lr:.2e}", leave=False):
        stats = trainee.train_step(lr)
        writer.add_scalar("train/loss", stats.loss, step)
        rows.append({"step": step, "train_loss": stats.loss, "val_loss": ""})
        if not stats.finite:
            print(f"step {step:5d}  training diverged (non-finite loss or gradient)")
            break
        if step % args.eval_every == 0 or step == args.steps:
            rows[-1]["val_loss"] = val = trainee.evaluate()
            writer.add_scalar("val/loss", val, step)
            tqdm.write(f"step {step:5d}  train {stats.loss:.4f}  val {val:.4f}")
    writer.close()
    evals = [r for r in rows if r["val_loss"] != ""]
    metrics = {
        "args": asdict(args),
        "final_train_loss": rows[-1]["train_loss"],
        "best_val_loss": min(r["val_loss"] for r in evals),
        "run_dir": str(folder),
    }
    write_csv(folder / "losses.csv", rows)
    write_json(folder / "metrics.json", metrics)
    _plot(rows, folder / "losses.png", f"{args.trainee} on {args.dataset}, lr={lr:.2e}")
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
    main(tyro.cli(Args))
