"""The plain training run: one trainee at a constant learning rate, its losses logged and plotted.

The run every learned schedule is compared with; :func:`train_trainee` is the job behind
``scripts/train_trainee.py``. ``TRAINEE_DATASETS`` names the datasets each trainee takes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from common.files import run_dir, write_csv, write_json
from common.tensorboard import log_hyperparameters
from trainees import TRAINEES, make_trainee
from trainees.image import IMAGE_DATASETS
from trainees.language import GPT_DATASETS

# the datasets each trainee takes, its default first: the bundled digits for the image
# trainees (offline), the GPT's own default corpus; the quadratic takes none
_IMAGES = ("digits", *(d for d in IMAGE_DATASETS if d != "digits"))
TRAINEE_DATASETS: dict[str, tuple[str, ...]] = {
    "quadratic": (),
    "mlp": _IMAGES,
    "resnet18": _IMAGES,
    "gpt": GPT_DATASETS,
}


def check_trainee_dataset(trainee: str, dataset: str | None) -> None:
    """Raise ValueError (naming the valid values) for an unknown trainee or a dataset it lacks."""
    if trainee not in TRAINEES:
        raise ValueError(f"--trainee {trainee!r} is invalid; valid: {', '.join(TRAINEES)}")
    valid = TRAINEE_DATASETS[trainee]
    if dataset is not None and dataset not in valid:
        raise ValueError(
            f"--dataset {dataset!r} is not a dataset of trainee {trainee!r}; "
            f"valid: {', '.join(valid) if valid else 'none (omit --dataset)'}"
        )


def dataset_name(trainee: str, dataset: str | None) -> str | None:
    """The dataset trained on: ``dataset``, else the trainee's default (None: none)."""
    return dataset or next(iter(TRAINEE_DATASETS[trainee]), None)


def train_trainee(
    trainee: str,
    *,
    dataset: str | None = None,
    total_steps: int = 300,
    lr_mult: float = 1.0,
    eval_every: int = 50,
    seed: int = 0,
    out: str | Path = "runs",
    record: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train one trainee at ``lr_mult`` x its base LR into a new run folder under ``out``.

    Logs to TensorBoard and writes ``losses.csv`` (every step), ``losses.png`` and
    ``metrics.json``; a non-finite loss or gradient stops the run.

    Args:
        trainee: one of ``trainees.TRAINEES``.
        dataset: one of ``TRAINEE_DATASETS[trainee]`` (None: its default).
        total_steps: optimizer steps.
        lr_mult: the learning rate as a multiple of the trainee's ``base_lr``.
        eval_every: optimizer steps between validation evaluations.
        seed: seed of the run.
        out: root folder of run directories.
        record: the command's arguments, stored as the metrics' ``args`` and logged to
            TensorBoard.

    Returns:
        The metrics written: ``args``, ``dataset``, ``final_train_loss``,
        ``best_val_loss`` and ``run_dir``.
    """
    record = dict(record or {})
    dataset = dataset_name(trainee, dataset)
    options = {"total_steps": total_steps} | ({"dataset": dataset} if dataset else {})
    model = make_trainee(trainee, **options)
    model.reset(seed)
    lr = lr_mult * model.base_lr
    label = f"{trainee}-{dataset}" if dataset else trainee
    folder = run_dir(out, label, "train_trainee", seed)
    writer = SummaryWriter(folder)
    log_hyperparameters(writer, record)
    rows = [{"step": 0, "train_loss": "", "val_loss": model.evaluate()}]  # one per step
    print(f"step {0:5d}  val {rows[0]['val_loss']:.4f}")
    steps = range(1, total_steps + 1)
    for step in tqdm(steps, desc=f"{trainee} lr={lr:.2e}", leave=False):
        stats = model.train_step(lr)
        writer.add_scalar("train/loss", stats.loss, step)
        rows.append({"step": step, "train_loss": stats.loss, "val_loss": ""})
        if not stats.finite:
            print(f"step {step:5d}  training diverged (non-finite loss or gradient)")
            break
        if step % eval_every == 0 or step == total_steps:
            rows[-1]["val_loss"] = val = model.evaluate()
            writer.add_scalar("val/loss", val, step)
            tqdm.write(f"step {step:5d}  train {stats.loss:.4f}  val {val:.4f}")
    writer.close()
    evals = [r for r in rows if r["val_loss"] != ""]
    metrics = {
        "args": record,
        "dataset": dataset,
        "final_train_loss": rows[-1]["train_loss"],
        "best_val_loss": min(r["val_loss"] for r in evals),
        "run_dir": str(folder),
    }
    write_csv(folder / "losses.csv", rows)
    write_json(folder / "metrics.json", metrics)
    title = f"{trainee} on {dataset}" if dataset else trainee
    plot_losses(rows, folder / "losses.png", f"{title}, lr={lr:.2e}")
    return metrics


def plot_losses(rows: list[dict[str, Any]], path: str | Path, title: str) -> None:
    """Training loss at every step and validation loss at each evaluation, as a PNG."""
    fig, ax = plt.subplots(figsize=(6, 4))
    train = [r for r in rows if r["train_loss"] != ""]
    evals = [r for r in rows if r["val_loss"] != ""]
    ax.plot(
        [r["step"] for r in train],
        [r["train_loss"] for r in train],
        lw=0.8,
        alpha=0.7,
        label="train (minibatch)",
    )
    ax.plot(
        [r["step"] for r in evals], [r["val_loss"] for r in evals], marker="o", label="validation"
    )
    ax.set(xlabel="optimizer step", ylabel="loss", title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
