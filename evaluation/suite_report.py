"""The held-out suite's report: its tables (``results.md``), its data (``results.json``,
``rows.csv``) and its plots, from a suite job's results (``experiments.suite_job``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common.files import atomic_write_text, write_csv, write_json
from common.plots import Panel, save_intervals, save_panels
from evaluation.sweep_report import fmt_ci


def _k(k: Any) -> str:
    return "no LR" if k is None else f"{k:+d}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A markdown table's lines: the header, its rule, one line per row."""
    return [
        "| " + " | ".join(header) + " |",
        "|---" * len(header) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def suite_markdown(plans: dict[str, dict[str, Any]], results: dict[str, Any]) -> str:
    """The suite's tables: per workload each method's worst Δ vs tuned cosine (and its k),
    then the mean rank across workloads with its CI."""
    score = results["score"]
    lines = [
        f"# Held-out suite v{results['version']} ({results['suite']}): {results['plan']}",
        "",
        f"Complete: {', '.join(results['complete']) or 'none'}."
        + (f" Missing: {', '.join(results['missing'])}." if results["missing"] else ""),
        "",
    ]
    added = {w: a for w, a in results.get("added_after_results", {}).items() if a}
    if added:
        lines += [
            "Added after results, not pre-registered: "
            + "; ".join(f"{w}: {', '.join(a)}" for w, a in added.items()),
            "",
        ]
    if score is None:
        return "\n".join(lines) + "\n"
    names = sorted(score["mean_rank"])
    work = list(score["workloads"])
    lines += [
        "## Worst Δ test loss vs tuned cosine over k (paired, 95% CI) [its k]",
        "",
        "The worst k is picked on the same seeds its CI comes from, so the CI is a little "
        "optimistic about how bad the worst k is.",
        "",
    ]
    worst = {(w, m): score["workloads"][w][m]["worst"] for w in work for m in names}
    lines += _table(
        ["method", *work],
        [
            [
                m,
                *(
                    f"{fmt_ci(worst[w, m], 'mean', signed=True)} [{_k(worst[w, m]['k'])}]"
                    for w in work
                ),
            ]
            for m in names
        ],
    )
    lines += [
        "",
        f"## Mean rank across the {len(work)} workloads (1 = best of {score['pool_size']}; "
        "95% CI over seeds, paired)",
        "",
        "Each training seed of a recipe is ranked against the other methods, not against "
        "its own recipe's other seeds; the other methods' ranks are their means over those "
        "pools."
        if score["groups"]
        else "All methods ranked together.",
        "",
    ]
    ranks = sorted(score["mean_rank"].items(), key=lambda kv: kv[1]["mean_rank"])
    lines += _table(
        ["method", "mean rank"],
        [[m, f"{r['mean_rank']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"] for m, r in ranks],
    )
    recipes = results.get("recipes", {})
    if recipes:
        lines += [
            "",
            "## Recipes over their training seeds: the seeds' worst Δ, mean / worst seed",
            "",
        ]
        lines += _table(
            ["recipe (seeds)", *work, "mean rank"],
            [
                [
                    f"{recipe} ({', '.join(r['seeds'])})",
                    *(
                        f"{r['worst_delta'][w]['mean']:+.4f} / {r['worst_delta'][w]['worst']:+.4f}"
                        for w in work
                    ),
                    f"{r['mean_rank']['mean']:.2f} / {r['mean_rank']['worst']:.2f}",
                ]
                for recipe, r in recipes.items()
            ],
        )
    lines += [
        "",
        "## Cost: each method's runs, single-threaded seconds summed (wall time ≈ this / workers)",
        "",
    ]
    lines += _table(
        ["method", *work, "all"],
        [
            [m, *(f"{per.get(w, 0.0):,.0f}" for w in work), f"{per['all']:,.0f}"]
            for m, per in results["run_seconds"].items()
        ],
    )
    lines += ["", "## Δ at each k", ""]
    for w in work:
        ks = plans[w]["ks"]
        deltas = {m: score["workloads"][w][m]["delta"] for m in names}
        lines += [f"### {w}", ""]
        lines += _table(
            ["method", *(_k(k) for k in ks)],
            [
                [m, *(fmt_ci(d.get(k, d.get(None)), "mean", signed=True) for k in ks)]
                for m, d in deltas.items()
            ],
        )
        lines.append("")
    return "\n".join(lines) + "\n"


def plot_suite(folder: str | Path, plans: dict[str, dict[str, Any]], score: dict[str, Any]) -> None:
    """``plots/suite_delta.png`` (Δ vs tuned cosine against the LR factor, one panel per
    workload) and ``plots/suite_rank.png`` (mean rank with its CI); each with its CSV."""
    panels = []
    for w, methods in score["workloads"].items():
        panel = Panel(w, "LR factor 2^k", "Δ test loss vs tuned cosine", logx=True)
        for m, s in methods.items():
            ks = plans[w]["ks"]
            pts = [s["delta"].get(k, s["delta"].get(None)) for k in ks]
            xs = [2.0**k for k in ks]
            label = m if s["takes_lr"] else f"{m} (no LR)"
            panel.series[label] = (xs, [p["mean"] for p in pts])
            panel.bands[label] = (xs, [p["ci_low"] for p in pts], [p["ci_high"] for p in pts])
        panels.append(panel)
    plots = Path(folder) / "plots"
    save_panels(
        plots / "suite_delta.png", panels, title="Paired Δ test loss vs tuned cosine", columns=3
    )
    ranks = sorted(score["mean_rank"].items(), key=lambda kv: kv[1]["mean_rank"])
    save_intervals(
        plots / "suite_rank.png",
        [(m, r["mean_rank"], r["ci_low"], r["ci_high"]) for m, r in ranks],
        xlabel=f"mean rank over {len(score['workloads'])} workloads (1 = best)",
    )


def write_suite_report(
    out: str | Path,
    plans: dict[str, dict[str, Any]],
    results: dict[str, Any],
    rows: Sequence[dict[str, Any]],
) -> None:
    """``results.json``, ``results.md``, ``rows.csv`` and the plots (when a workload is
    complete)."""
    out = Path(out)
    score = results["score"]
    write_json(out / "results.json", results | {"score": score and jsonable(score)})
    write_csv(out / "rows.csv", rows) if rows else None
    atomic_write_text(out / "results.md", suite_markdown(plans, results))
    if results["score"] is not None:
        plot_suite(out, plans, results["score"])


def jsonable(score: dict[str, Any]) -> dict[str, Any]:
    """The score with each method's Δ per k as a list of ``{"k", ...}`` records (``k``
    None for a method without an LR), so that ``results.json`` keeps ``k`` a number."""
    workloads = {
        w: {
            m: s | {"delta": [{"k": k, **d} for k, d in s["delta"].items()]}
            for m, s in methods.items()
        }
        for w, methods in score["workloads"].items()
    }
    return score | {"workloads": workloads}
