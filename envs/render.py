"""Rendering of an episode's LR and loss curves for Gymnasium's "ansi" and "rgb_array" modes.

Pure functions over a small :class:`RenderHistory`. Plots use matplotlib's object API on an
Agg canvas (never ``pyplot``): headless and thread-safe. Building a figure costs more than
drawing it, so each thread keeps one figure per image size and redraws it with new data.
"""

from __future__ import annotations

import math
import threading

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter, MaxNLocator

RENDER_MODES: tuple[str, ...] = ("ansi", "rgb_array")
_DPI = 100


class RenderHistory:
    """The LR and loss curves of the current episode, for rendering.

    Parallel lists, one entry per recorded point: ``steps`` (optimizer step), ``lrs``,
    ``train_losses`` (NaN at the reset point, which has no training loss) and ``val_losses``.
    """

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.lrs: list[float] = []
        self.train_losses: list[float] = []
        self.val_losses: list[float] = []

    def reset(self, loss0: float, lr: float) -> None:
        """Start an episode: step 0, validation loss ``loss0``, learning rate ``lr``."""
        self.steps, self.lrs = [0], [float(lr)]
        self.train_losses, self.val_losses = [math.nan], [float(loss0)]

    def append(self, step: int, lr: float, train_loss: float, val_loss: float) -> None:
        """Record the values after one env step (``step`` = optimizer steps done so far)."""
        self.steps.append(int(step))
        self.lrs.append(float(lr))
        self.train_losses.append(float(train_loss))
        self.val_losses.append(float(val_loss))


def render_ansi(history: RenderHistory, total_steps: int) -> str:
    """One line, e.g. ``'step 64/2000  lr 1.000e-03  train 0.4312  val 0.4020  best 0.4020'``.

    ``train`` shows ``-`` before the first step; ``best`` is the lowest finite val loss so far.
    """
    if not history.steps:
        return f"step 0/{total_steps}  lr -  train -  val -  best -"
    finite = [v for v in history.val_losses if math.isfinite(v)]
    train = f"{history.train_losses[-1]:.4f}" if len(history.steps) > 1 else "-"
    best = f"{min(finite):.4f}" if finite else "-"
    return (
        f"step {history.steps[-1]}/{total_steps}  lr {history.lrs[-1]:.3e}  "
        f"train {train}  val {history.val_losses[-1]:.4f}  best {best}"
    )


_LOCAL = threading.local()  # .figs: {(height, width): _Plot}, this thread's reusable figures


class _Plot:
    """A reusable figure: the LR axis on top, the loss axis below, and their three lines."""

    def __init__(self, height: int, width: int) -> None:
        fig = Figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI)
        self.canvas = FigureCanvasAgg(fig)
        fig.subplots_adjust(left=0.17, right=0.97, top=0.97, bottom=0.11, hspace=0.12)
        self.axes = tuple(fig.subplots(2, 1, sharex=True))
        self.lr = self.axes[0].plot([], [], color="tab:purple", lw=1)[0]
        self.train = self.axes[1].plot([], [], color="tab:blue", lw=0.8, label="train")[0]
        self.val = self.axes[1].plot([], [], color="tab:orange", lw=1.2, label="val")[0]
        for ax, name in zip(self.axes, ("lr", "loss"), strict=True):
            ax.set_yscale("log")  # plain-text tick labels: mathtext parsing is ~4x slower
            ax.yaxis.set_major_formatter(LogFormatter())
            ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False))
            ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
            ax.set_ylabel(name, fontsize=6)
            ax.yaxis.set_label_coords(-0.15, 0.5)  # fixed positions: no per-draw label layout
            ax.xaxis.set_label_coords(0.5, -0.1)
            ax.tick_params(which="both", labelsize=5, length=2, pad=1)
        self.axes[1].legend(fontsize=5, loc="upper right", frameon=False)


def _set_log_data(line, steps: np.ndarray, values: list[float]) -> bool:
    """Give ``line`` the finite, positive points of ``values``; return whether there are any."""
    y = np.asarray(values, dtype=float)
    keep = np.isfinite(y) & (y > 0)
    line.set_data(steps[keep], y[keep])
    line.set_marker("." if keep.sum() == 1 else "None")  # a lone point is still visible
    return bool(keep.any())


def render_rgb(
    history: RenderHistory, total_steps: int, *, height: int = 240, width: int = 320
) -> np.ndarray:
    """A ``(height, width, 3)`` uint8 image of the episode so far.

    Top: the LR (log scale); bottom: the train and val losses (log scale); both against the
    optimizer step, x axis ``0..total_steps``. Non-finite or non-positive points are skipped.
    """
    figs = _LOCAL.__dict__.setdefault("figs", {})
    if (height, width) not in figs:
        figs[height, width] = _Plot(height, width)
    plot = figs[height, width]
    steps = np.asarray(history.steps, dtype=float)
    has_lr = _set_log_data(plot.lr, steps, history.lrs)
    has_loss = _set_log_data(plot.train, steps, history.train_losses)
    has_loss = _set_log_data(plot.val, steps, history.val_losses) or has_loss
    for ax, has_data in zip(plot.axes, (has_lr, has_loss), strict=True):
        if has_data:
            ax.relim()
            ax.set_autoscaley_on(True)
            ax.autoscale_view(scalex=False)
        else:  # a log axis with no positive data cannot place its ticks
            ax.set_ylim(0.1, 10)
    plot.axes[1].set_xlim(0, max(int(total_steps), 1))
    plot.canvas.draw()
    img = np.asarray(plot.canvas.buffer_rgba())[:height, :width, :3]
    out = np.full((height, width, 3), 255, np.uint8)  # white padding if DPI rounding fell short
    out[: img.shape[0], : img.shape[1]] = img
    return out
