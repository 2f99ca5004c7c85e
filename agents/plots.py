"""Line plots that are also saved as data: every PNG has a CSV of its points beside it."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.figure import Figure

from trainees.files import atomic_write_bytes, write_csv


@dataclass
class Panel:
    """One axes of a figure: named series of ``(x, y)`` points.

    Attributes:
        title, xlabel, ylabel: the axes' labels.
        series: label -> ``(xs, ys)``; a label starting with ``"ref:"`` is drawn dashed.
        logx, logy: log scales.
        hlines: label -> y of a horizontal reference line (e.g. a baseline's value).
    """

    title: str
    xlabel: str
    ylabel: str
    series: dict[str, tuple[Sequence[float], Sequence[float]]] = field(default_factory=dict)
    logx: bool = False
    logy: bool = False
    hlines: dict[str, float] = field(default_factory=dict)


def save_panels(path: str | Path, panels: Sequence[Panel], title: str = "") -> Path:
    """Draw ``panels`` side by side into ``path`` (.png) and write their points to .csv.

    Both files are written atomically. Returns the PNG's path.
    """
    path = Path(path).with_suffix(".png")
    fig = Figure(figsize=(5.5 * len(panels), 4))  # no pyplot: no backend, no global state
    axes = fig.subplots(1, len(panels), squeeze=False)
    rows = []
    for ax, panel in zip(axes[0], panels, strict=True):
        for label, (xs, ys) in panel.series.items():
            style = "--" if label.startswith("ref:") else "-o" if len(xs) <= 12 else "-"
            ax.plot(xs, ys, style, label=label.removeprefix("ref:"), markersize=4)
            rows += [
                {"panel": panel.title, "series": label, "x": float(x), "y": float(y)}
                for x, y in zip(xs, ys, strict=True)
            ]
        for label, y in panel.hlines.items():
            ax.axhline(y, linestyle=":", color="gray", label=label)
            rows.append({"panel": panel.title, "series": label, "x": float("nan"), "y": y})
        ax.set(title=panel.title, xlabel=panel.xlabel, ylabel=panel.ylabel)
        if panel.logx:
            ax.set_xscale("log", base=2)
        if panel.logy:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    atomic_write_bytes(path, buf.getvalue())
    if rows:
        write_csv(path.with_suffix(".csv"), rows)
    return path


def schedule_panels(
    curves: dict[str, tuple[Sequence[float], Sequence[float], Sequence[float]]], seed: int
) -> list[Panel]:
    """LR and validation-loss panels of training runs on one seed.

    ``curves`` maps a label (``"ref:..."`` draws it dashed, e.g. an expert) to the run's
    ``(optimizer steps, LRs, validation losses)``.
    """
    lr = Panel(f"LR, held-out seed {seed}", "optimizer step", "learning rate", logy=True)
    val = Panel("validation loss", "optimizer step", "validation loss", logy=True)
    for label, (steps, lrs, val_losses) in curves.items():
        lr.series[label] = (steps, lrs)
        val.series[label] = (steps, val_losses)
    return [lr, val]
