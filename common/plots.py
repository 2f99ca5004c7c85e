"""Line plots that are also saved as data: every PNG has a CSV of its points beside it."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from common.files import atomic_write_bytes, write_csv


@dataclass
class Panel:
    """One axes of a figure: named series of ``(x, y)`` points.

    Attributes:
        title, xlabel, ylabel: the axes' labels.
        series: label -> ``(xs, ys)``; a label starting with ``"ref:"`` is drawn dashed.
        logx, logy: log scales.
        hlines: label -> y of a horizontal reference line (e.g. a baseline's value).
        bands: label -> ``(xs, lows, highs)``, a shaded band in the colour of that series.
    """

    title: str
    xlabel: str
    ylabel: str
    series: dict[str, tuple[Sequence[float], Sequence[float]]] = field(default_factory=dict)
    logx: bool = False
    logy: bool = False
    hlines: dict[str, float] = field(default_factory=dict)
    bands: dict[str, tuple[Sequence[float], Sequence[float], Sequence[float]]] = field(
        default_factory=dict
    )


def save_panels(
    path: str | Path, panels: Sequence[Panel], title: str = "", columns: int | None = None
) -> Path:
    """Draw ``panels`` side by side into ``path`` (.png) and write their points to .csv;
    ``columns`` wraps them into rows of that many.

    Both files are written atomically. Returns the PNG's path.
    """
    path = Path(path).with_suffix(".png")
    many = max(len(p.series) for p in panels) > 10  # more lines than the default colours
    width = 5.5 + (2.0 if many else 0.0)
    cols = min(columns or len(panels), len(panels))
    n_rows = -(-len(panels) // cols)
    height = 4 + (1.0 if many else 0.0)
    fig = Figure(figsize=(width * cols, height * n_rows))  # no pyplot

    axes = fig.subplots(n_rows, cols, squeeze=False).ravel()
    for ax in axes[len(panels) :]:
        ax.set_axis_off()
    rows = []
    for ax, panel in zip(axes[: len(panels)], panels, strict=True):
        if many:
            ax.set_prop_cycle(color=[colormaps["tab20"](i) for i in range(20)])
        for label, (xs, ys) in panel.series.items():
            style = "--" if label.startswith("ref:") else "-o" if len(xs) <= 12 else "-"
            (line,) = ax.plot(xs, ys, style, label=label.removeprefix("ref:"), markersize=4)
            rows += [
                {"panel": panel.title, "series": label, "x": float(x), "y": float(y)}
                for x, y in zip(xs, ys, strict=True)
            ]
            if label in panel.bands:
                bx, lo, hi = panel.bands[label]
                ax.fill_between(bx, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
                for suffix, ys_ in ((":low", lo), (":high", hi)):
                    rows += [
                        {
                            "panel": panel.title,
                            "series": label + suffix,
                            "x": float(x),
                            "y": float(y),
                        }
                        for x, y in zip(bx, ys_, strict=True)
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
        if many:  # beside the axes, where it hides no line
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        else:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _write(fig, path, rows)


def _write(fig: Figure, path: Path, rows: list[dict]) -> Path:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    atomic_write_bytes(path, buf.getvalue())
    if rows:
        write_csv(path.with_suffix(".csv"), rows)
    return path


def save_intervals(
    path: str | Path,
    intervals: Sequence[tuple[str, float, float, float]],
    *,
    xlabel: str,
    title: str = "",
) -> Path:
    """A point with its interval bar per label (``(label, point, low, high)``, top to
    bottom) into ``path`` (.png), and the same numbers into .csv; both atomic."""
    path = Path(path).with_suffix(".png")
    fig = Figure(figsize=(6.5, 0.45 * len(intervals) + 1.2))
    ax = fig.subplots()
    ys = np.arange(len(intervals))[::-1]
    for y, (_, point, low, high) in zip(ys, intervals, strict=True):
        ax.errorbar(point, y, xerr=[[point - low], [high - point]], fmt="o", capsize=4)
    ax.set_yticks(ys, [label for label, *_ in intervals])
    ax.set(xlabel=xlabel, title=title)
    ax.grid(alpha=0.3, axis="x")
    rows = [{"label": lb, "point": p, "low": lo, "high": hi} for lb, p, lo, hi in intervals]
    return _write(fig, path, rows)


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


def save_episode_schedules(path: str | Path, runs: dict[str, Any], title: str = "") -> Path:
    """:func:`schedule_panels` of env episodes (``envs.rollout.Episode``), saved with CSV.

    ``runs`` maps a label to an episode (with ``steps``, ``lrs``, ``val_losses`` and
    ``seed``; all on the seed of the first).
    """
    seed = next(iter(runs.values())).seed
    curves = {label: (r.steps, r.lrs, r.val_losses) for label, r in runs.items()}
    return save_panels(path, schedule_panels(curves, seed), title=title)
