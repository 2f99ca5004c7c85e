"""How far a method's learning rate follows the base LR it is given: the correction slope.

A method run from the given LR ``reference · 2^k`` trains at some LR over its run. Its
*LR error* is ``log2(mean LR / mean LR of tuned cosine)``, the mean taken over the run's
optimizer steps, against
cosine from the reference LR (``k = 0``) on the same seeds. Cosine from the given LR has
error ``k`` at every ``k``; a method that finds the right LR from any start has error
near 0 at every ``k``. The *correction slope* is the least-squares slope of the error on
``k`` over all runs: 1 for a fixed schedule (no correction), 0 for full correction.
A tuning-free policy that loses from small given LRs shows it here first: its errors at
``k < 0`` stay negative (it raises the LR too little).

Read from a sweep's run records (``evaluation.runs.execute``: ``curve.lr``, ``curve.step``,
``given_lr``, ``optimizer``, ``method``). Only runs whose curve is the LR their optimizer
steps with are tracked (:data:`TRACKED_OPTIMIZERS`): the LR-free optimizers' curves hold
their schedule's multiplier of an adapted step size, and a method that takes no base LR
(the range test, the env's own base LR) has no ``k``.
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

# the optimizers that step with the LR of the run's curve (the others adapt their own
# step size, and their curve holds the schedule's multiplier of it)
TRACKED_OPTIMIZERS = frozenset({"adamw", "adamw_fused", "schedulefree"})


def mean_lr(run: dict[str, Any]) -> float:
    """The mean LR over a run's optimizer steps: each action's LR (``curve.lr``) weighted
    by the steps it held (``curve.step`` is the optimizer step after each action; the last
    action of a budget that is no multiple of the action's steps is shorter).

    Raises:
        ValueError: a run without a curve, or whose steps do not rise.
    """
    curve = run.get("curve", {})
    lrs, steps = curve.get("lr") or [], curve.get("step") or []
    if not lrs or len(lrs) != len(steps):
        raise ValueError(f"run {run.get('key', '?')} has no LR curve (curve.lr and curve.step)")
    widths = np.diff([0, *steps])
    if (widths <= 0).any():
        raise ValueError(f"run {run.get('key', '?')}: curve.step={steps!r} does not rise")
    return float(np.dot(lrs, widths) / steps[-1])


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
        methods: the methods to track (None: every tracked method with runs at more than
            one ``k``; one run at a single ``k`` has no slope).

    Returns:
        ``{"reference_lr", "calibration_mean_lr", "methods": {name: {"slope",
        "by_k": [{"k", "n", "median", "low", "high"}]}}}``; errors in log2 units, ``low``
        and ``high`` the seeds' extremes.

    Raises:
        ValueError: no ``k = 0`` run of ``calibration``, a tracked run whose given LR is
            not ``reference_lr · 2^k`` for an integer ``k``, or a named method without
            tracked runs.
    """
    by_method: dict[str, dict[int, list[float]]] = {}
    for run in runs:
        if run.get("given_lr") is None or run.get("optimizer") not in TRACKED_OPTIMIZERS:
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
            f"{reference_lr:g}); methods with tracked runs: {', '.join(sorted(by_method)) or 'none'}"
        )
    scale = float(np.mean(base))
    if methods is None:
        methods = [m for m, ks in by_method.items() if len(ks) > 1]
    out: dict[str, Any] = {}
    for name in methods:
        if name not in by_method:
            valid = ", ".join(sorted(by_method))
            raise ValueError(f"method {name!r} has no tracked runs; valid: {valid}")
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
    (``<workload>/results.json``, whose sweep gives the reference LR and the seeds its
    runs were scored on), by workload.

    Raises:
        ValueError: a folder without any workload report.
    """
    out = {}
    for results in sorted(Path(folder).glob("*/results.json")):
        sweep = json.loads(results.read_text())["sweep"]
        seeds = set(sweep["final_seeds"])  # the report's seeds (a validation suite's held_out)
        runs = [r for r in RunStore(results.parent).done().values() if r["seed"] in seeds]
        reference = sweep["reference_lr"]
        try:
            out[results.parent.name] = lr_errors(runs, reference)
        except ValueError as e:
            raise ValueError(f"workload {results.parent.name}: {e}") from e
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
