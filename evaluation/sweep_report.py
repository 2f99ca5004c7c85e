"""The LR sweep's report: its tables (markdown), its plot and the files a sweep writes.

The numbers come from ``evaluation.sweep.summarize_sweep``; this module only lays them out
(test loss and Δ by k, the summaries, the policies against the LR-free methods, forgetting,
requested pairs, the reward ranking) and writes ``results.json``, ``results.md``,
``runs.csv`` and ``plots/sweep.png`` (+ .csv).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common.files import atomic_write_text, write_csv, write_json
from common.plots import Panel, save_panels
from evaluation.reward_ranking import ranking_markdown, reward_ranking
from evaluation.sweep import Sweep, summarize_sweep

__all__ = ["plot_sweep", "sweep_markdown", "write_sweep_report"]


def _pairs_markdown(sweep: Sweep, pairs: dict[str, Any]) -> list[str]:
    """The table of ``pair_differences`` (none without pairs)."""
    title = "Paired Δ test loss between methods (a - b) [95% CI]; below 0: a is better"
    return _k_table(sweep, title, "a - b", pairs, "delta")


def _k_table(sweep: Sweep, title: str, first: str, by_name: dict[str, Any], key: str) -> list[str]:
    """A ``### title`` and a table of one row per name, one cell per ``k`` (none when
    ``by_name`` is empty)."""
    if not by_name:
        return []
    lines = [
        f"### {title}\n",
        f"| {first} | " + " | ".join(f"k={k:+d}" for k in sweep.ks) + " |",
        "|---" * (len(sweep.ks) + 1) + "|",
    ]
    for name, rows in by_name.items():
        lines.append(f"| {name} | " + " | ".join(_k_cells(sweep, rows, key)) + " |")
    return [*lines, ""]


def _k_cells(sweep: Sweep, rows: Sequence[dict[str, Any]], key: str) -> list[str]:
    """One cell per ``k`` of the sweep from per-k rows: ``delta`` rows as a signed mean
    [CI], other rows (an IQM interval) unsigned; a ``k = None`` row fills every cell."""
    at = {r["k"]: r[key] for r in rows}
    signed = key == "delta"

    def cell(x: dict[str, float] | None) -> str:
        return "—" if x is None else fmt_ci(x, "mean" if signed else "iqm", signed=signed)

    return [cell(at[None] if None in at else at.get(k)) for k in sweep.ks]


def fmt_ci(x: dict[str, float], key: str, signed: bool = False) -> str:
    """``x[key] [ci_low, ci_high]`` to 4 decimals (signed: with + on positives)."""
    f = "+.4f" if signed else ".4f"
    return f"{x[key]:{f}} [{x['ci_low']:{f}}, {x['ci_high']:{f}}]"


def _span(ks: list[int]) -> str:
    return f"{ks[0]}…{ks[-1]} ({len(ks)})" if ks else "none"


def sweep_markdown(sweep: Sweep, summary: dict[str, Any], added: Sequence[str] = ()) -> str:
    """The sweep's tables: test loss IQM [CI] and Δ vs the reference at k = 0, by k."""
    head = "| method | " + " | ".join(f"k={k:+d}" for k in sweep.ks) + " |"
    rule = "|---" * (len(sweep.ks) + 1) + "|"
    loss, delta = [head, rule], [head, rule]
    for name, s in summary["methods"].items():
        label = name + (" (added)" if name in added else "")
        by_k = {p["k"]: p for p in s["points"]}
        cells = [by_k.get(k) for k in sweep.ks] if s["takes_lr"] else [by_k[None]] * len(sweep.ks)
        loss.append(
            f"| {label} | "
            + " | ".join(fmt_ci(c["test_loss"], "iqm") if c else "—" for c in cells)
            + " |"
        )
        delta.append(
            f"| {label} | "
            + " | ".join(fmt_ci(c["delta"], "mean", signed=True) if c else "—" for c in cells)
            + " |"
        )
    summ = [
        "| method | widest k within +0.005 (mean) | widest k (CI) | worst Δ [95% CI] at k |",
        "|---|---|---|---|",
    ]
    for name, s in summary["methods"].items():
        w = s["worst_delta"]
        at = "—" if w["k"] is None else f"{w['k']:+d}"
        summ.append(
            f"| {name} | {_span(s['widest_within'])} | {_span(s['widest_within_ci'])} "
            f"| {fmt_ci(w, 'mean', signed=True)} at {at} |"
        )
    ref = f"{summary['reference']} at k=0 (LR {summary['reference_lr']:.3g})"
    return "\n".join(
        [
            f"## {sweep.env_id}: LR sensitivity\n",
            f"LR = {summary['reference_lr']:.3g} x 2^k; {len(sweep.final_seeds)} "
            f"{'final' if sweep.seed_range == 'final_evaluation' else sweep.seed_range} seeds "
            f"({sweep.final_seeds[0]}…{sweep.final_seeds[-1]}); a method without an LR is one "
            "column repeated.\n",
            "### Test loss IQM [95% CI]\n",
            *loss,
            "",
            f"### Δ test loss vs {ref}, paired on seeds [95% CI]\n",
            *delta,
            "",
            f"### Summaries ({summary['n_compared']} methods compared with {ref})\n",
            *summ,
            "",
            *_versus_markdown(sweep, summary.get("policies_vs_lr_free", {})),
            *_forgetting_markdown(sweep, summary.get("forgetting", {})),
            *_pairs_markdown(sweep, summary.get("pairs", {})),
        ]
    )


def _forgetting_markdown(sweep: Sweep, forgetting: dict[str, Any]) -> list[str]:
    """The forgetting table (none when no run reports forgetting)."""
    title = "Forgetting: source-corpus loss at the end minus at the start, IQM [95% CI]"
    return _k_table(sweep, title, "method", forgetting, "forgetting")


def _versus_markdown(sweep: Sweep, versus: dict[str, Any]) -> list[str]:
    """The policies-vs-LR-free-methods table (none without policies)."""
    if not versus:
        return []
    lines = [
        "### Learned policies vs the methods that take no LR: Δ test loss "
        "(policy - method), paired on seeds [95% CI]; below 0: the policy is better\n",
        "| policy | vs | "
        + " | ".join(f"k={k:+d}" for k in sweep.ks)
        + " | CI below 0 at every k (unadjusted) |",
        "|---|---|" + "---|" * (len(sweep.ks) + 1),
    ]
    for pol, by_method in versus.items():
        for other, rows in by_method.items():
            at = {r["k"]: r["delta"] for r in rows}
            every = all(k in at and at[k]["ci_high"] < 0 for k in sweep.ks)
            lines.append(
                f"| {pol} | {other} | "
                + " | ".join(_k_cells(sweep, rows, "delta"))
                + f" | {'yes' if every else 'no'} |"
            )
    return [*lines, ""]


def plot_sweep(path: str | Path, sweep: Sweep, summary: dict[str, Any]) -> Path:
    """Test loss against the LR factor (log2 axis), IQM with its CI band; a method without
    an LR is a horizontal band. PNG and CSV."""
    factors = [2.0**k for k in sweep.ks]
    panel = Panel(
        f"{sweep.env_id}: test loss vs base LR",
        f"LR / {sweep.reference_lr:.3g}",
        "test loss (IQM, 95% CI; log scale)",
        logx=True,
        logy=True,
    )
    for name, s in summary["methods"].items():
        pts = s["points"]
        if s["takes_lr"]:
            xs = [2.0 ** p["k"] for p in pts]
        else:
            xs, pts = factors, [pts[0]] * len(factors)
            name = f"ref:{name}" if name == sweep.reference else f"{name} (no LR)"
        panel.series[name] = (xs, [p["test_loss"]["iqm"] for p in pts])
        panel.bands[name] = (
            xs,
            [p["test_loss"]["ci_low"] for p in pts],
            [p["test_loss"]["ci_high"] for p in pts],
        )
    return save_panels(path, [panel])


def write_sweep_report(
    folder: str | Path,
    sweep: Sweep,
    result: dict[str, Any],
    *,
    extra: dict | None = None,
    pairs: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """``results.json``, ``results.md``, ``runs.csv`` and ``plots/sweep.png`` (+ .csv);
    ``pairs`` as in ``summarize_sweep``."""
    folder = Path(folder)
    summary = summarize_sweep(sweep, result["runs"], pairs=pairs)
    added = result.get("added_after_results", [])
    ranking = reward_ranking(result["runs"])  # runs stored before returns were recorded: none
    results = {
        "sweep": sweep.to_json(),
        "summary": summary,
        "preregistered": result.get("preregistered"),
        "added_after_results": added,
        "reward_ranking": ranking,
    } | (extra or {})
    write_json(folder / "results.json", results)
    write_csv(
        folder / "runs.csv",
        [
            {
                "method": r["method"],
                "k": sweep.k_of(r),
                "given_lr": r["given_lr"],
                "base_lr": r["base_lr"],
                "seed": r["seed"],
                "test_loss": r.get("test_loss"),
                "best_val_loss": r.get("best_val_loss"),
                "diverged": r["diverged"],
                "wall_seconds": r["wall_seconds"],
            }
            for r in result["runs"]
        ],
    )
    md = sweep_markdown(sweep, summary, added)
    if ranking["runs"]:
        md += "\n## Reward presets vs test loss\n\n" + ranking_markdown(ranking)
    atomic_write_text(folder / "results.md", md)
    plot_sweep(folder / "plots" / "sweep.png", sweep, summary)
    return results
