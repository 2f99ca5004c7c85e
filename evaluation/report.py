"""What an evaluation grid found: per-method statistics, the results files and the plots.

Statistics follow rliable: per method the interquartile mean (IQM) of the final-seed
test losses with a stratified bootstrap 95% CI; per-seed paired differences against
the reference method (tuned cosine) with a bootstrap CI; the probability that a
method's run beats a reference run. A run that diverged scores its trainee's loss at
initialisation (the run trained nothing), so diverging never looks good.

Many methods are compared with one reference, so a method is called better or worse
than it only when its sign-flip test's p-value stays below 0.05 after Holm's correction
over all the methods compared in that env (``evaluation.compare.verdicts``); the results
say how many were compared. A method added to a grid folder after it held results is
labelled ``added_after_results`` (``(added)`` in tables and plots).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from common.files import atomic_write_text, write_csv, write_json
from common.plots import Panel, save_intervals, save_panels
from common.stats import (
    ALPHA,
    VERDICT_TEST,
    iqm,
    iqm_interval,
    paired_difference,
    probability_of_improvement,
    verdicts,
)

SCALARS = (
    "method",
    "seed",
    "base_lr",
    "optimizer",
    "test_loss",
    "test_accuracy",
    "test_bits_per_char",
    "test_split",
    "test_samples",
    "best_val_loss",
    "final_val_loss",
    "steps_to_target",
    "diverged",
    "wall_seconds",
    "train_seconds",
)


def loss_score(run: dict[str, Any], metric: str = "test_loss") -> float:
    """A run's loss for the statistics: the loss at initialisation if it diverged."""
    value = run.get(metric)
    return float(run["loss0"]) if run["diverged"] or value is None else float(value)


def steps_to_target(run: dict[str, Any], target: float | None) -> int | None:
    """First optimizer step whose validation loss is at most ``target`` (None: never)."""
    if target is None:
        return None
    for step, val in zip(run["curve"]["step"], run["curve"]["val_loss"], strict=True):
        if val is not None and val <= target:
            return int(step)
    return None


def target_loss(
    tuning: dict[str, Any], tune_runs: Sequence[dict[str, Any]], env: str, reference: str
) -> float | None:
    """The target validation loss of ``env``: the reference method's median final
    validation loss on the tuning seeds at its chosen base LR (None without one)."""
    chosen = tuning.get(env, {}).get(reference)
    if chosen is None:
        return None
    vals = [
        r["final_val_loss"]
        for r in tune_runs
        if r["env_id"] == env
        and r["method"] == reference
        and r["base_lr"] == chosen["base_lr"]
        and r["final_val_loss"] is not None
    ]
    return float(np.median(vals)) if vals else None


def summarize(
    runs: Sequence[dict[str, Any]], *, reference: str, target: float | None, seed: int = 0
) -> list[dict[str, Any]]:
    """One row per method of one env's final runs: IQMs with CIs, paired differences, the
    probability of improvement and the Holm-corrected verdict (``p_value``, ``p_holm``,
    ``verdict``) against ``reference``, and the other metrics."""
    methods = list(dict.fromkeys(r["method"] for r in runs))
    by = {
        m: sorted((r for r in runs if r["method"] == m), key=lambda r: r["seed"]) for m in methods
    }
    ref = by.get(reference)
    rows = []
    for m, rs in by.items():
        row: dict[str, Any] = {
            "method": m,
            "n": len(rs),
            "base_lr": rs[0]["base_lr"],
            "optimizer": rs[0]["optimizer"],
        }
        row["test_loss"] = iqm_interval([loss_score(r) for r in rs], seed=seed)
        for metric in ("best_val_loss", "final_val_loss"):  # IQMs (no CI: not the comparison)
            row[metric] = {"iqm": iqm([loss_score(r, metric) for r in rs])}
        for metric in ("test_accuracy", "test_bits_per_char"):
            if all(r.get(metric) is not None for r in rs):
                row[metric] = iqm_interval([r[metric] for r in rs], seed=seed)
        if ref is not None and m != reference:
            if [r["seed"] for r in rs] != [r["seed"] for r in ref]:
                raise ValueError(f"{m} and {reference} were not run on the same seeds")
            a = [loss_score(r) for r in rs]
            b = [loss_score(r) for r in ref]
            row["delta_test_loss"] = paired_difference(np.subtract(a, b), seed=seed)
            row["p_improvement"] = probability_of_improvement(a, b, seed=seed)
        reached = [steps_to_target(r, target) for r in rs]
        row["steps_to_target"] = {
            "target": target,
            "reached": sum(s is not None for s in reached),
            "median": float(np.median([s for s in reached if s is not None]))
            if any(s is not None for s in reached)
            else None,
        }
        row["diverged"] = sum(bool(r["diverged"]) for r in rs)
        row["wall_seconds"] = float(np.mean([r["wall_seconds"] for r in rs]))
        row["test_split"] = rs[0].get("test_split")
        rows.append(row)
    compared = {r["method"]: r["delta_test_loss"]["diffs"] for r in rows if "delta_test_loss" in r}
    found = verdicts(compared, seed=seed) if compared else {}
    for row in rows:
        row |= found.get(row["method"], {})
    return rows


def n_compared(rows: Sequence[dict[str, Any]]) -> int:
    """How many methods of an env were compared with the reference (Holm's ``m``)."""
    return sum("verdict" in r for r in rows)


def label(row: dict[str, Any]) -> str:
    """A method's name in tables and plots: ``(added)`` after a method added to the grid
    folder after it held results."""
    return row["method"] + (" (added)" if row.get("added_after_results") else "")


def comparison_note(rows: Sequence[dict[str, Any]], reference: str) -> str:
    """The sentence that says how many methods a table compares, on how many seeds."""
    n = n_compared(rows)
    seeds = next((r["n"] for r in rows if r["method"] == reference), 0)
    return (
        f"{n} method{'s' * (n != 1)} compared with {reference} on the same {seeds} seeds; "
        f"a verdict holds after Holm's correction at {ALPHA:g}."
    )


def _ci(x: dict[str, float] | None, key: str = "iqm", fmt: str = ".4f") -> str:
    if x is None:
        return "—"
    return f"{x[key]:{fmt}} [{x['ci_low']:{fmt}}, {x['ci_high']:{fmt}}]"


def markdown(rows: Sequence[dict[str, Any]], *, env: str, reference: str) -> str:
    """The table of one env, a row per method, below the sentence that says how many
    methods were compared with ``reference``."""
    acc = any("test_accuracy" in r for r in rows)
    head = ["method", "base LR", "test loss IQM [95% CI]"]
    head += ["test acc. IQM [95% CI]"] if acc else []
    head += [
        "best val IQM",
        f"Δ test loss vs {reference} [95% CI]",
        f"P(better than {reference})",
        "Holm p",
        "verdict",
        "steps to target",
        "diverged",
        "s/run",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        stt = r["steps_to_target"]
        steps = "—" if stt["median"] is None else f"{stt['median']:.0f} ({stt['reached']}/{r['n']})"
        cells = [label(r), f"{r['base_lr']:.3g}", _ci(r["test_loss"])]
        cells += [_ci(r.get("test_accuracy"))] if acc else []
        cells += [
            f"{r['best_val_loss']['iqm']:.4f}",
            _ci(r.get("delta_test_loss"), "mean", "+.4f"),
            _ci(r.get("p_improvement"), "p", ".2f"),
            f"{r['p_holm']:.3g}" if "p_holm" in r else "—",
            r.get("verdict", "—"),
            steps,
            str(r["diverged"]),
            f"{r['wall_seconds']:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    note = f"{comparison_note(rows, reference)}\n\n" if n_compared(rows) else ""
    return f"### {env}\n\n{note}" + "\n".join(lines) + "\n"


def _median_curves(runs: Sequence[dict[str, Any]], key: str) -> tuple[list, list, list, list]:
    """Steps and the 25/50/75th percentiles of ``key`` over runs (finished runs only)."""
    full = [r for r in runs if not r["diverged"]]
    if not full:
        return [], [], [], []
    n = min(len(r["curve"]["step"]) for r in full)
    values = np.array([[np.nan if v is None else v for v in r["curve"][key][:n]] for r in full])
    lo, mid, hi = np.nanpercentile(values, [25, 50, 75], axis=0)
    return full[0]["curve"]["step"][:n], mid.tolist(), lo.tolist(), hi.tolist()


def plot_env(
    folder: Path, env: str, runs: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]]
) -> list[Path]:
    """CI bars of the test loss per method; median LR schedules; median validation
    curves with interquartile bands (each PNG with its CSV; methods named by :func:`label`)."""
    bars = [
        (label(r), r["test_loss"]["iqm"], r["test_loss"]["ci_low"], r["test_loss"]["ci_high"])
        for r in rows
    ]
    names = {r["method"]: label(r) for r in rows}
    paths = [
        save_intervals(
            folder / f"test_loss_{env}",
            bars,
            xlabel="test loss (IQM, 95% CI)",
            title=f"{env}: {rows[0]['n']} final seeds",
        )
    ]
    lr = Panel("LR (median over seeds)", "optimizer step", "learning rate", logy=True)
    val = Panel(
        "validation loss (median, IQR band)", "optimizer step", "validation loss", logy=True
    )
    for method in dict.fromkeys(r["method"] for r in runs):
        mine = [r for r in runs if r["method"] == method]
        steps, mid, _, _ = _median_curves(mine, "lr")
        if steps:
            name = names.get(method, method)
            lr.series[name] = (steps, mid)
            steps, mid, lo, hi = _median_curves(mine, "val_loss")
            val.series[name] = (steps, mid)
            val.bands[name] = (steps, lo, hi)
    paths.append(save_panels(folder / f"curves_{env}", [lr, val], title=env))
    return paths


def write_report(
    folder: str | Path,
    grid_json: dict[str, Any],
    result: dict[str, Any],
    *,
    seed: int = 0,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``results.json``, ``runs.csv``, ``results.md`` and ``plots/`` for a finished grid.

    ``result`` is what ``evaluation.harness.run_grid`` returns (its ``added_after_results``
    names the methods to label); ``extra`` goes into ``results.json`` as it is. Returns
    the results dict.
    """
    folder = Path(folder)
    reference = grid_json["reference"]
    added = list(result.get("added_after_results", []))
    envs: dict[str, Any] = {}
    md = []
    for env in grid_json["envs"]:
        order = {m["name"]: i for i, m in enumerate(grid_json.get("methods", []))}
        runs = sorted(
            (r for r in result["final"] if r["env_id"] == env),
            key=lambda r: (order.get(r["method"], len(order)), r["seed"]),
        )
        target = target_loss(result["tuning"], result["tune"], env, reference)
        rows = summarize(runs, reference=reference, target=target, seed=seed)
        for row in rows:
            row["added_after_results"] = row["method"] in added
        envs[env] = {
            "n_compared": n_compared(rows),
            "alpha": ALPHA,
            "verdict_test": VERDICT_TEST,
            "target_val_loss": target,
            "methods": rows,
            "tuning": result["tuning"].get(env, {}),
            "test_split": sorted({str(r.get("test_split")) for r in runs}),
        }
        md.append(markdown(rows, env=env, reference=reference))
        if "val" in envs[env]["test_split"]:
            md.append("This dataset has no test split: its whole validation split stands in.\n")
        plot_env(folder / "plots", env, runs, rows)
    if added:
        md.append(
            f"(added): added to this grid folder after it held results: {', '.join(added)}.\n"
        )
    results = {
        "grid": grid_json,
        "base_lrs": result["base_lrs"],
        "preregistered": result.get("preregistered"),
        "added_after_results": added,
        "envs": envs,
    } | (extra or {})
    write_json(folder / "results.json", results)
    write_csv(
        folder / "runs.csv",
        [
            {k: r.get(k) for k in SCALARS if k != "steps_to_target"}
            | {"env_id": r["env_id"], "added_after_results": r["method"] in added}
            | {"steps_to_target": steps_to_target(r, envs[r["env_id"]]["target_val_loss"])}
            for r in result["final"]
        ],
    )
    atomic_write_text(folder / "results.md", "\n".join(md))
    return results
