"""The held-out suite's jobs behind ``scripts/tune_suite.py`` and ``scripts/run_suite.py``:
tuning each workload's reference LR, and running a pre-registered method list over the
suite (resumable, on the evaluation backends), then its table, plots and data.

A suite plan (``evaluation/plans/suite_*.json``) names the suite and its version, the
methods and policies, and a block of final seeds; each workload of the suite expands it
into a sweep plan of its own (``evaluation.suite.Workload.plan``) run into
``out/<workload>/`` by the LR-sensitivity sweep, so each workload has the sweep's report
too. ``out/results.{json,md}``, ``out/rows.csv`` and ``out/plots/`` hold the suite's
score (``evaluation.suite_score``) over the workloads that are complete.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from common.files import atomic_write_text, write_csv, write_json
from common.plots import Panel, save_intervals, save_panels
from evaluation.backends import Backend
from evaluation.methods import METHODS
from evaluation.report import loss_score
from evaluation.runs import RunSpec
from evaluation.seed_blocks import check_block
from evaluation.store import RunStore
from evaluation.suite import TUNING_SEEDS, VERSION, Workload, suite
from evaluation.suite_score import suite_score
from evaluation.sweep import run_sweep, sweep_from_plan
from evaluation.sweep_report import fmt_ci, write_sweep_report
from experiments.lr_sweep import previous_invocations


# -- tuning ---------------------------------------------------------------------------------
def choose_reference(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The LR with the lowest mean final validation loss over the tuning seeds (a diverged
    run scores its initial loss); the table per LR and whether the choice is at the
    grid's edge."""
    by_lr: dict[float, list[float]] = {}
    for r in runs:
        by_lr.setdefault(float(r["given_lr"]), []).append(loss_score(r, "final_val_loss"))
    lrs = sorted(by_lr)
    table = [
        {"lr": lr, "mean_final_val_loss": float(np.mean(by_lr[lr])), "n": len(by_lr[lr])}
        for lr in lrs
    ]
    best = min(range(len(table)), key=lambda i: table[i]["mean_final_val_loss"])
    return {"lr": lrs[best], "at_edge": best in (0, len(lrs) - 1), "table": table}


def tune_workload(
    workload: Workload,
    out: str | Path,
    backend: Backend,
    *,
    guess: float,
    ks: Sequence[int] = (-2, -1, 0, 1, 2),
    max_widen: int = 3,
    progress: bool = True,
) -> dict[str, Any]:
    """Tuned cosine's base LR on ``workload``: cosine at ``guess · 2^k`` on
    :data:`evaluation.suite.TUNING_SEEDS`, the grid widened by one factor of 2 past
    whichever edge holds the best LR, up to ``max_widen`` times, until the best is inside.
    Runs are stored in ``out/<workload>/runs`` (a resume runs only the missing ones).
    """
    store = RunStore(Path(out) / workload.name)
    opts = tuple(sorted(workload.options.items()))
    cosine = METHODS["cosine"]
    ks = sorted(ks)
    for _ in range(max_widen + 1):
        specs = [
            RunSpec("tune", workload.env_id, opts, cosine, guess * 2.0**k, s)
            for k in ks
            for s in TUNING_SEEDS
        ]
        runs = store.run(specs, backend, desc=f"tune {workload.name}", progress=progress)
        choice = choose_reference(runs)
        if not choice["at_edge"]:
            break
        ks = (
            [ks[0] - 1, *ks]
            if choice["lr"] == min(r["given_lr"] for r in runs)
            else [*ks, ks[-1] + 1]
        )
    seconds = [r["final_timing"].get("total_train_time") for r in runs if r.get("final_timing")]
    return choice | {
        "workload": workload.name,
        "tuning_seeds": list(TUNING_SEEDS),
        "grid": [guess * 2.0**k for k in ks],
        "mean_train_seconds": float(np.mean(seconds)) if seconds and None not in seconds else None,
    }


def tune_job(
    out: str | Path,
    backend: Backend,
    guesses: dict[str, float],
    *,
    suite_name: str = "test",
    progress: bool = True,
) -> dict[str, Any]:
    """Tune every workload of ``suite_name`` named in ``guesses`` (name -> first guess);
    writes ``out/tuning.json`` and ``out/tuning.md`` (one line per workload, to copy into
    ``evaluation/suite.py``).

    Raises:
        ValueError: a name that is no workload of the suite, naming the valid ones.
    """
    workloads = {w.name: w for w in suite(suite_name)}
    unknown = sorted(set(guesses) - set(workloads))
    if unknown:
        raise ValueError(
            f"{unknown} are not workloads of the {suite_name} suite; valid: {', '.join(workloads)}"
        )
    results = {}
    for name, guess in guesses.items():
        t0 = time.perf_counter()
        results[name] = tune_workload(workloads[name], out, backend, guess=guess, progress=progress)
        results[name]["wall_seconds"] = time.perf_counter() - t0
    write_json(Path(out) / "tuning.json", results)
    lines = [
        f"# Reference LRs, suite v{VERSION} ({suite_name}), tuning seeds {list(TUNING_SEEDS)}",
        "",
    ]
    for name, r in results.items():
        cells = " ".join(f"{t['lr']:.3g}:{t['mean_final_val_loss']:.4f}" for t in r["table"])
        edge = "AT THE GRID'S EDGE" if r["at_edge"] else "inside the grid"
        lines.append(f"- {name}: {r['lr']:.3g} ({edge}); mean final val loss {cells}")
    atomic_write_text(Path(out) / "tuning.md", "\n".join(lines) + "\n")
    return results


# -- a plan over the suite ---------------------------------------------------------------
def read_suite_plan(path: str | Path) -> tuple[dict[str, Any], str]:
    """A suite plan's contents and the SHA-1 of its bytes.

    Raises:
        ValueError: no such file, not a suite plan, or a plan made for another version
            of the suite, naming the one it gives and the current one.
    """
    if not Path(path).is_file():
        raise ValueError(f"suite plan {str(path)!r} is not a file (see evaluation/plans/)")
    data = Path(path).read_bytes()
    plan = json.loads(data)
    missing = [k for k in ("suite", "version", "final_seeds", "methods") if k not in plan]
    if missing:
        raise ValueError(f"{path} is not a suite plan: it lacks {missing}")
    if plan["version"] != VERSION:
        raise ValueError(
            f"{path} was made for suite v{plan['version']}; evaluation/suite.py is v{VERSION}"
        )
    unknown = [m for m in plan["methods"] if m not in METHODS]
    if unknown:
        raise ValueError(f"plan methods {unknown} are not methods; valid: {', '.join(METHODS)}")
    return plan, hashlib.sha1(data).hexdigest()


def expand(plan: dict[str, Any], only: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """Each workload's sweep plan (by workload name), cheapest first.

    Raises:
        ValueError: a name in ``only`` that is no workload of the plan's suite.
    """
    workloads = {w.name: w for w in suite(plan["suite"])}
    unknown = sorted(set(only) - set(workloads))
    if unknown:
        raise ValueError(
            f"{unknown} are not workloads of the {plan['suite']} suite; valid: {', '.join(workloads)}"
        )
    chosen = [w for n, w in workloads.items() if not only or n in only]
    chosen.sort(key=lambda w: w.seconds_per_run * len(w.ks) * w.n_seeds)
    return {
        w.name: w.plan(
            final_seeds=plan["final_seeds"],
            methods=plan["methods"],
            policies=plan.get("policies", ()),
        )
        for w in chosen
    }


def suite_rows(
    sweeps: dict[str, Any], runs: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """The score's table: one row per run, ``{workload, method, k, seed, test_loss}``."""
    return [
        {
            "workload": name,
            "method": r["method"],
            "k": sweeps[name].k_of(r),
            "seed": r["seed"],
            "test_loss": loss_score(r),
        }
        for name, rs in runs.items()
        for r in rs
    ]


def recipe_summary(
    score: dict[str, Any], recipes: dict[str, Sequence[str]]
) -> dict[str, dict[str, Any]]:
    """Each recipe over its training seeds (its policies): per workload the mean and the
    worst of the seeds' worst Δ vs tuned cosine, and the same of their mean ranks; every
    seed's own figures stay in the score.

    Raises:
        ValueError: a recipe naming a policy the score does not hold.
    """
    out = {}
    for recipe, names in recipes.items():
        missing = [n for n in names if n not in score["mean_rank"]]
        if missing:
            raise ValueError(f"recipe {recipe!r} names {missing}, not methods of the plan")
        per = {}
        for w, methods in score["workloads"].items():
            worst = [methods[n]["worst"]["mean"] for n in names]
            per[w] = {"mean": float(np.mean(worst)), "worst": float(np.max(worst))}
        ranks = [score["mean_rank"][n]["mean_rank"] for n in names]
        out[recipe] = {
            "seeds": list(names),
            "worst_delta": per,
            "mean_rank": {"mean": float(np.mean(ranks)), "worst": float(np.max(ranks))},
        }
    return out


def run_seconds(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """Per method, the sum of its runs' wall seconds on each workload and in all (what one
    method over the suite costs on one core; divide by the workers for the wall time)."""
    out: dict[str, dict[str, float]] = {}
    for name, rs in runs.items():
        for r in rs:
            per = out.setdefault(r["method"], {})
            per[name] = per.get(name, 0.0) + float(r.get("wall_seconds") or 0.0)
    return {m: per | {"all": sum(per.values())} for m, per in sorted(out.items())}


def suite_job(
    plan_path: str | Path,
    out: str | Path,
    backend: Backend,
    *,
    workloads: Sequence[str] = (),
    progress: bool = True,
    backend_name: str = "local",
) -> dict[str, Any]:
    """Run (or resume) a suite plan into ``out``: each workload's sweep into
    ``out/<workload>/``, then the suite's score over every workload of the suite that is
    complete (``workloads`` runs only those named, the rest as they are on disk).

    Raises:
        ValueError: the plan's (``read_suite_plan``, ``evaluation.seed_blocks``), a
            policy file that does not exist, or an unknown workload name.
    """
    check_block(plan_path)
    plan, digest = read_suite_plan(plan_path)
    missing = [p for p in plan.get("policies", []) if not Path(p.partition("=")[2] or p).is_file()]
    if missing:
        raise ValueError(f"the plan's policies {missing} are no files (train them first)")
    plans = expand(plan)
    todo = expand(plan, workloads) if workloads else plans
    t0 = time.perf_counter()
    sweeps, runs, complete = {}, {}, []
    for name, p in plans.items():
        sweep = sweep_from_plan(p)
        sweeps[name] = sweep
        folder = Path(out) / name
        if name in todo:
            result = run_sweep(sweep, folder, backend, progress=progress)
            write_sweep_report(folder, sweep, result, extra={"suite_plan": str(plan_path)})
            runs[name], complete = result["runs"], [*complete, name]
        else:  # what an earlier invocation finished
            done = RunStore(folder).done() if (folder / "runs").is_dir() else {}
            specs = sweep.specs()
            if specs and all(s.key in done for s in specs):
                runs[name], complete = [done[s.key] for s in specs], [*complete, name]
    this = {
        "backend": {
            "name": backend_name,
            "workers": getattr(backend, "workers", None),
            "threads": backend.threads,
        },
        "workloads": list(todo),
        "wall_seconds": time.perf_counter() - t0,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    invocations = [*previous_invocations(Path(out) / "results.json"), this]
    rows = suite_rows(sweeps, runs)
    score = suite_score(rows) if rows else None
    results = {
        "plan": str(plan_path),
        "plan_sha1": digest,
        "suite": plan["suite"],
        "version": VERSION,
        "complete": complete,
        "missing": [n for n in plans if n not in complete],
        "invocations": invocations,
        "wall_seconds_all_invocations": sum(i["wall_seconds"] for i in invocations),
        "run_seconds": run_seconds({n: runs[n] for n in complete}),
        "score": score,
        "recipes": recipe_summary(score, plan.get("recipes", {})) if score else {},
    }
    write_suite_report(out, plans, results, rows)
    return results


# -- the report ---------------------------------------------------------------------------
def _k(k: Any) -> str:
    return "no LR" if k is None else f"{k:+d}"


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
    if score is None:
        return "\n".join(lines) + "\n"
    names = sorted(score["mean_rank"])
    work = list(score["workloads"])
    lines += [
        "## Worst Δ test loss vs tuned cosine over k (paired, 95% CI) [its k]",
        "",
        "| method | " + " | ".join(work) + " |",
        "|---" * (len(work) + 1) + "|",
    ]
    for m in names:
        cells = []
        for w in work:
            worst = score["workloads"][w][m]["worst"]
            cells.append(f"{fmt_ci(worst, 'mean', signed=True)} [{_k(worst['k'])}]")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"## Mean rank across the {len(work)} workloads (1 = best of {len(names)}; 95% CI "
        "over seeds, paired)",
        "",
        "| method | mean rank |",
        "|---|---|",
    ]
    for m in sorted(names, key=lambda m: score["mean_rank"][m]["mean_rank"]):
        r = score["mean_rank"][m]
        lines.append(f"| {m} | {r['mean_rank']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}] |")
    if results.get("recipes"):
        lines += [
            "",
            "## Recipes over their training seeds: the seeds' worst Δ, mean / worst seed",
            "",
            "| recipe (seeds) | " + " | ".join(work) + " | mean rank |",
            "|---" * (len(work) + 2) + "|",
        ]
    for recipe, r in results.get("recipes", {}).items():
        cells = [
            f"{r['worst_delta'][w]['mean']:+.4f} / {r['worst_delta'][w]['worst']:+.4f}"
            for w in work
        ]
        rank = f"{r['mean_rank']['mean']:.2f} / {r['mean_rank']['worst']:.2f}"
        lines.append(
            f"| {recipe} ({', '.join(r['seeds'])}) | " + " | ".join(cells) + f" | {rank} |"
        )
    lines += [
        "",
        "## Cost: each method's runs, single-threaded seconds summed (wall time ≈ this / workers)",
        "",
        "| method | " + " | ".join(work) + " | all |",
        "|---" * (len(work) + 2) + "|",
    ]
    for m, per in results["run_seconds"].items():
        cells = [f"{per.get(w, 0.0):,.0f}" for w in work] + [f"{per['all']:,.0f}"]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", "## Δ at each k", ""]
    for w in work:
        ks = plans[w]["ks"]
        lines += [f"### {w}", "", "| method | " + " | ".join(_k(k) for k in ks) + " |"]
        lines.append("|---" * (len(ks) + 1) + "|")
        for m in names:
            d = score["workloads"][w][m]["delta"]
            cells = [fmt_ci(d.get(k, d.get(None)), "mean", signed=True) for k in ks]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
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
    save_panels(plots / "suite_delta.png", panels, title="Paired Δ test loss vs tuned cosine")
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
    write_json(out / "results.json", results)
    write_csv(out / "rows.csv", rows) if rows else None
    atomic_write_text(out / "results.md", suite_markdown(plans, results))
    if results["score"] is not None:
        plot_suite(out, plans, results["score"])
