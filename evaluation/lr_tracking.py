"""How far a method's learning rate follows the base LR it is given: the correction slope.

A method run from the given LR ``reference · 2^k`` trains at some LR over its run. Its
*LR error* is ``log2(mean LR / mean LR of tuned cosine)``, the mean taken over the
episode's actions (each holds the LR for the same number of optimizer steps), against
cosine from the reference LR (``k = 0``) on the same seeds. Cosine from the given LR has
error ``k`` at every ``k``; a method that finds the right LR from any start has error
near 0 at every ``k``. The *correction slope* is the least-squares slope of the error on
``k`` over all runs: 1 for a fixed schedule (no correction), 0 for full correction.
A tuning-free policy that loses from small given LRs shows it here first: its errors at
``k < 0`` stay negative (it raises the LR too little).

Read from a sweep's run records (``evaluation.runs.execute``: ``curve.lr``, ``given_lr``,
``method``, ``seed``). Methods without a base LR (the range test) or whose curve is not
an LR (the LR-free optimizers' curves hold their schedule's multiplier of an adapted
step size) are left out by the caller (:data:`UNTRACKED`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from common.files import write_csv, write_json
from common.plots import Panel, save_panels
from evaluation.store import RunStore

# the suite's methods whose curve is not the LR their optimizer steps with, or that take
# no base LR: their LR error means nothing
UNTRACKED = frozenset({"prodigy_cosine", "dadapt_cosine", "range_test_cosine"})


def mean_lr(run: dict[str, Any]) -> float:
    """The mean LR over a run's actions (``curve.lr``).

    Raises:
        ValueError: a run without a curve.
    """
    lrs = run.get("curve", {}).get("lr") or []
    if not lrs:
        raise ValueError(f"run {run.get('key', '?')} has no LR curve")
    return float(np.mean(lrs))


def lr_errors(
    runs: Iterable[dict[str, Any]],
    reference_lr: float,
    *,
    calibration: str = "cosine",
    methods: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Each method's LR error by ``k`` and its correction slope.

    Args:
        runs: a sweep's final runs (one workload).
        reference_lr: the workload's reference LR (tuned cosine's, ``k = 0``).
        calibration: the method whose ``k = 0`` runs give the mean LR of tuned cosine.
        methods: the methods to track (None: every method with runs at more than one
            ``k``, less :data:`UNTRACKED`).

    Returns:
        ``{"reference_lr", "calibration_mean_lr", "methods": {name: {"slope",
        "by_k": [{"k", "n", "median", "low", "high"}]}}}``; errors in log2 units, ``low``
        and ``high`` the seeds' extremes.

    Raises:
        ValueError: no ``k = 0`` run of ``calibration``, or a run whose given LR is not
            ``reference_lr · 2^k`` for an integer ``k``.
    """
    by_method: dict[str, dict[int, list[float]]] = {}
    for run in runs:
        wanted = run["method"] == calibration or (
            run["method"] not in UNTRACKED if methods is None else run["method"] in methods
        )
        if run.get("given_lr") is None or not wanted:
            continue
        ratio = math.log2(float(run["given_lr"]) / reference_lr)
        k = round(ratio)
        if abs(ratio - k) > 1e-6:
            raise ValueError(
                f"run {run.get('key', '?')}: given_lr={run['given_lr']!r} is not "
                f"{reference_lr:g} · 2^k for an integer k"
            )
        by_method.setdefault(run["method"], {}).setdefault(k, []).append(mean_lr(run))
    base = by_method.get(calibration, {}).get(0)
    if not base:
        raise ValueError(
            f"calibration={calibration!r} has no run at k = 0 (the reference LR "
            f"{reference_lr:g}); methods with runs: {', '.join(sorted(by_method)) or 'none'}"
        )
    scale = float(np.mean(base))
    if methods is None:
        methods = [m for m, ks in by_method.items() if len(ks) > 1]
    out: dict[str, Any] = {}
    for name in methods:
        if name not in by_method:
            raise ValueError(f"method {name!r} has no runs; valid: {', '.join(sorted(by_method))}")
        rows, xs, ys = [], [], []
        for k in sorted(by_method[name]):
            errors = [math.log2(m / scale) for m in by_method[name][k]]
            rows.append(
                {
                    "k": k,
                    "n": len(errors),
                    "median": float(np.median(errors)),
                    "low": min(errors),
                    "high": max(errors),
                }
            )
            xs += [k] * len(errors)
            ys += errors
        slope = float(np.polyfit(xs, ys, 1)[0]) if len(set(xs)) > 1 else None
        out[name] = {"slope": slope, "by_k": rows}
    return {"reference_lr": reference_lr, "calibration_mean_lr": scale, "methods": out}


def suite_lr_tracking(folder: str | Path) -> dict[str, dict[str, Any]]:
    """:func:`lr_errors` of every workload of a suite's output folder that has its report
    (``<workload>/results.json``, whose sweep gives the reference LR), by workload.

    Raises:
        ValueError: a folder without any workload report.
    """
    out = {}
    for results in sorted(Path(folder).glob("*/results.json")):
        reference = json.loads(results.read_text())["sweep"]["reference_lr"]
        runs = [r for r in RunStore(results.parent).done().values() if r["phase"] == "final"]
        out[results.parent.name] = lr_errors(runs, reference)
    if not out:
        raise ValueError(f"{folder} holds no workload report (<workload>/results.json)")
    return out


def write_lr_tracking(out: str | Path, by_workload: dict[str, dict[str, Any]]) -> Path:
    """Write ``lr_tracking.json``, ``lr_tracking.csv`` (one row per workload, method and
    ``k``) and ``plots/lr_tracking.png`` (+ its CSV: the error against ``k``, one panel per
    workload; cosine from the given LR is the no-correction line ``error = k``) into
    ``out``."""
    out = Path(out)
    write_json(out / "lr_tracking.json", by_workload)
    rows = [
        {"workload": w, "method": m, "slope": r["slope"]} | point
        for w, result in by_workload.items()
        for m, r in result["methods"].items()
        for point in r["by_k"]
    ]
    write_csv(out / "lr_tracking.csv", rows)
    panels = []
    for workload, result in by_workload.items():
        panel = Panel(workload, "k (given LR = reference · 2^k)", "log2(mean LR / tuned cosine's)")
        for name, r in result["methods"].items():
            label = name if r["slope"] is None else f"{name} (slope {r['slope']:.2f})"
            panel.series[label] = ([p["k"] for p in r["by_k"]], [p["median"] for p in r["by_k"]])
            panel.bands[label] = (
                [p["k"] for p in r["by_k"]],
                [p["low"] for p in r["by_k"]],
                [p["high"] for p in r["by_k"]],
            )
        panels.append(panel)
    title = "LR error against the given LR (median and range over seeds)"
    return save_panels(out / "plots" / "lr_tracking.png", panels, title=title, columns=3)
