"""The shipped tuning-free policy in a plain PyTorch loop, on a model of your own.

A small CNN on scikit-learn's bundled 8x8 digits (offline, seconds on a CPU) is trained
with AdamW from a deliberately wrong learning rate, 8x too high and 8x too low, once with
the shipped policy choosing the LR (``LearnedLRScheduler(optimizer, "tuningfree", ...)``)
and once with cosine annealing from the same LR. The CNN is no task the policy was
trained on. Prints the final test loss of each run and writes the LR curves
(``lr_curves.png`` and ``lr_curves.csv``) and ``results.json`` into ``--out``::

    python examples/tuningfree_loop.py --out runs/example
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import tyro
from sklearn.datasets import load_digits
from torch import nn
from torch.nn.functional import cross_entropy

from agents.scheduler import LearnedLRScheduler
from common.files import write_csv, write_json

# cosine's best LR for this CNN and budget: the lowest mean final validation loss over
# 1e-3 x 2^j (j = -3..5) on seeds 100-102 (``--tune``): 8e-3 (0.0426), inside the grid;
# 4e-3 gives 0.0476, 1.6e-2 0.0481, 1e-3 0.0984
TUNED_LR = 8e-3
STEPS, BATCH, EVAL_EVERY = 512, 64, 64


def splits(seed: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Digits, shuffled from ``seed``: 1,200 train, 300 validation, 297 test images."""
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(x))
    x = torch.tensor(x[order] / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
    y = torch.tensor(y[order])
    return {
        "train": (x[:1200], y[:1200]),
        "val": (x[1200:1500], y[1200:1500]),
        "test": (x[1500:], y[1500:]),
    }


def cnn() -> nn.Module:
    """Your model: two convolutions and a linear head (no task the policy trained on)."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 10),
    )


@torch.no_grad()
def loss_on(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> float:
    """The model's cross-entropy on one split, in eval mode."""
    model.eval()
    out = cross_entropy(model(data[0]), data[1]).item()
    model.train()
    return out


def train(lr: float, schedule: str, seed: int = 0) -> dict:
    """One run: ``schedule`` is "tuningfree" (the shipped policy) or "cosine"."""
    torch.manual_seed(seed)  # a script of your own may seed the global RNG; the library never does
    data, model = splits(seed), cnn()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    if schedule == "tuningfree":
        scheduler = LearnedLRScheduler(
            optimizer,
            "tuningfree",
            model=model,
            total_steps=STEPS,
            initial_val_loss=loss_on(model, data["val"]),
        )
    else:
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=STEPS)
    x, y = data["train"]
    batches = torch.randint(
        0, len(x), (STEPS, BATCH), generator=torch.Generator().manual_seed(seed)
    )
    lrs = []
    for step in range(1, STEPS + 1):
        lrs.append(optimizer.param_groups[0]["lr"])
        idx = batches[step - 1]
        optimizer.zero_grad()
        loss = cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        if schedule == "tuningfree":
            scheduler.observe(loss, max_norm=1.0)  # reads the gradient norms, then clips
        else:
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % EVAL_EVERY == 0 and schedule == "tuningfree":
            scheduler.report_val_loss(loss_on(model, data["val"]))
        scheduler.step()
    return {
        "schedule": schedule,
        "lr": lr,
        "test_loss": loss_on(model, data["test"]),
        "val_loss": loss_on(model, data["val"]),
        "lrs": lrs,
    }


def plot(runs: list[dict], out: Path) -> None:
    """LR against step, each schedule from each wrong LR; the tuned LR as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in runs:
        style = "-" if r["schedule"] == "tuningfree" else "--"
        ax.plot(range(1, STEPS + 1), r["lrs"], style, label=f"{r['schedule']} from {r['lr']:g}")
    ax.axhline(TUNED_LR, color="gray", lw=0.8, label=f"cosine's tuned LR {TUNED_LR:g}")
    ax.set(
        yscale="log",
        xlabel="optimizer step",
        ylabel="learning rate",
        title="Tuning-free policy vs cosine, from an LR 8x too high or too low",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "lr_curves.png", dpi=120)
    plt.close(fig)
    names = [f"{r['schedule']}@{r['lr']:g}" for r in runs]
    rows = [
        {"step": s + 1} | {n: r["lrs"][s] for n, r in zip(names, runs, strict=True)}
        for s in range(STEPS)
    ]
    write_csv(out / "lr_curves.csv", rows)


@dataclass(frozen=True)
class Args:
    """Run the example.

    Attributes:
        out: where the plot, its data and results.json go.
        seed: the data order and initialisation.
        tune: instead, find cosine's best LR for this CNN (seeds 100-102).
    """

    out: str = "runs/example"
    seed: int = 0
    tune: bool = False


def tune() -> None:
    """Cosine's final validation loss over an LR grid, to choose ``TUNED_LR``."""
    for j in range(-3, 6):
        lr = 1e-3 * 2**j
        vals = [train(lr, "cosine", seed)["val_loss"] for seed in (100, 101, 102)]
        print(f"cosine lr {lr:.2e}: mean final val loss {np.mean(vals):.4f}")


def main(args: Args) -> None:
    """Four runs (two schedules from two wrong LRs): losses printed, curves plotted."""
    if args.tune:
        tune()
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = [train(TUNED_LR * f, s, args.seed) for f in (8, 1 / 8) for s in ("tuningfree", "cosine")]
    print(f"tuned cosine LR {TUNED_LR:g}; final test loss after {STEPS} steps:")
    for f in (8, 1 / 8):
        lr = TUNED_LR * f
        tf, cos = (
            next(r for r in runs if r["lr"] == lr and r["schedule"] == s)
            for s in ("tuningfree", "cosine")
        )
        print(
            f"  from {lr:g} ({'8x too high' if f > 1 else '8x too low'}): "
            f"tuningfree {tf['test_loss']:.4f}   cosine {cos['test_loss']:.4f}"
        )
    plot(runs, out)
    write_json(out / "results.json", [{k: v for k, v in r.items() if k != "lrs"} for r in runs])
    print(f"plot: {out / 'lr_curves.png'} (data: lr_curves.csv)")


if __name__ == "__main__":
    main(tyro.cli(Args))
