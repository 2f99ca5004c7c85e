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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from common.files import atomic_write_text, write_json
from evaluation.backends import Backend
from evaluation.methods import METHODS, policy_spec
from evaluation.report import loss_score
from evaluation.runs import RunSpec
from evaluation.seed_blocks import check_block
from evaluation.store import RunStore, added_after_results
from evaluation.suite import TUNING_SEEDS, VERSION, suite
from evaluation.suite_report import write_suite_report
from evaluation.suite_score import recipe_summary, suite_score
from evaluation.sweep import run_sweep, sweep_from_plan
from evaluation.sweep_report import write_sweep_report
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


class Tunable(Protocol):
    """What :func:`tune_workload` tunes: a suite workload, or a sampled task."""

    @property
    def name(self) -> str: ...
    @property
    def env_id(self) -> str: ...
    @property
    def options(self) -> Mapping[str, Any]: ...


def tune_workload(
    workload: Tunable,
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
    widened = 0
    while True:
        specs = [
            RunSpec("tune", workload.env_id, opts, cosine, guess * 2.0**k, s)
            for k in ks
            for s in TUNING_SEEDS
        ]
        runs = store.run(specs, backend, desc=f"tune {workload.name}", progress=progress)
        choice = choose_reference(runs)
        if not choice["at_edge"] or widened == max_widen:
            break
        low = choice["lr"] == choice["table"][0]["lr"]
        ks = [ks[0] - 1, *ks] if low else [*ks, ks[-1] + 1]
        widened += 1
    seconds = [r["wall_seconds"] for r in runs if r.get("wall_seconds") is not None]
    return choice | {
        "workload": workload.name,
        "tuning_seeds": list(TUNING_SEEDS),
        "grid": [t["lr"] for t in choice["table"]],
        "widened": widened,
        "median_run_seconds": float(np.median(seconds)) if seconds else None,
    }


def check_guesses(names: Sequence[str], suite_name: str) -> None:
    """Refuse a name that is no workload of ``suite_name``, or a name given twice.

    Raises:
        ValueError: naming them and the valid names.
    """
    workloads = [w.name for w in suite(suite_name)]
    unknown = sorted(set(names) - set(workloads))
    twice = sorted({n for n in names if list(names).count(n) > 1})
    if unknown or twice:
        raise ValueError(
            (f"{unknown} are not workloads of the {suite_name} suite" if unknown else "")
            + ("; " if unknown and twice else "")
            + (f"{twice} given twice" if twice else "")
            + f"; valid: {', '.join(workloads)}"
        )


def tune_job(
    out: str | Path,
    backend: Backend,
    guesses: dict[str, float],
    *,
    suite_name: str = "test",
    progress: bool = True,
) -> dict[str, Any]:
    """Tune every workload of ``suite_name`` named in ``guesses`` (name -> first guess);
    writes ``out/tuning.json`` (beside the workloads an earlier invocation tuned there) and
    ``out/tuning.md``, one line per workload, whose table goes into ``evaluation/suite.py``.

    Raises:
        ValueError: a name that is no workload of the suite, naming the valid ones.
    """
    check_guesses(list(guesses), suite_name)
    workloads = {w.name: w for w in suite(suite_name)}
    path = Path(out) / "tuning.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    for name, guess in guesses.items():
        t0 = time.perf_counter()
        results[name] = tune_workload(workloads[name], out, backend, guess=guess, progress=progress)
        results[name]["wall_seconds"] = time.perf_counter() - t0
        write_json(path, results)  # each workload as soon as it is tuned
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
PLAN_KEYS = frozenset(
    {"suite", "version", "final_seeds", "methods", "policies", "recipes", "rerun_of",
     "preregistered", "notes"}
)  # fmt: skip


def read_suite_plan(path: str | Path) -> tuple[dict[str, Any], str]:
    """A suite plan's contents and the SHA-1 of its bytes, checked before any work.

    Raises:
        ValueError: no such file; not a suite plan, or a key it does not know; a plan
            made for another version of the suite; an unknown suite or method; fewer
            final seeds than a workload takes; a recipe naming no policy of the plan.
    """
    if not Path(path).is_file():
        raise ValueError(f"suite plan {str(path)!r} is not a file (see evaluation/plans/)")
    data = Path(path).read_bytes()
    plan = json.loads(data)
    missing = [k for k in ("suite", "version", "final_seeds", "methods") if k not in plan]
    if missing:
        raise ValueError(f"{path} is not a suite plan: it lacks {missing}")
    unknown_keys = sorted(set(plan) - PLAN_KEYS)
    if unknown_keys:
        raise ValueError(
            f"{path}: unknown keys {unknown_keys}; valid: {', '.join(sorted(PLAN_KEYS))}"
        )
    if plan["version"] != VERSION:
        raise ValueError(
            f"{path} was made for suite v{plan['version']}; evaluation/suite.py is v{VERSION}"
        )
    workloads = suite(plan["suite"])
    unknown = [m for m in plan["methods"] if m not in METHODS]
    if unknown:
        raise ValueError(f"plan methods {unknown} are not methods; valid: {', '.join(METHODS)}")
    need = max(w.n_seeds for w in workloads)
    if len(set(plan["final_seeds"])) < need:
        raise ValueError(
            f"{path} gives {len(plan['final_seeds'])} final seeds; the suite needs {need}"
        )
    policies = [policy_spec(p)[0] for p in plan.get("policies", [])]
    for recipe, names in plan.get("recipes", {}).items():
        strays = [n for n in names if n not in policies]
        if strays:
            raise ValueError(
                f"{path}: recipe {recipe!r} names {strays}, no policies of the plan "
                f"({', '.join(policies) or 'none'})"
            )
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
    plan, digest = read_suite_plan(plan_path)
    check_block(plan_path)
    missing = [p for p in plan.get("policies", []) if not Path(policy_spec(p)[1]).is_file()]
    if missing:
        raise ValueError(f"the plan's policies {missing} are no files (train them first)")
    previous = Path(out) / "results.json"
    if previous.exists() and json.loads(previous.read_text())["plan_sha1"] != digest:
        raise ValueError(
            f"{out} holds results of another version of {plan_path} (its SHA-1 differs): a "
            "plan changed after its results were written is a new plan, with a new out folder "
            "and a fresh block of final seeds"
        )
    plans = expand(plan)
    todo = expand(plan, workloads) if workloads else plans
    t0 = time.perf_counter()
    sweeps, runs, complete, added = {}, {}, [], {}
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
        added[name] = added_after_results(folder, sweep) if (folder / "grid.json").exists() else []
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
    recipes = plan.get("recipes", {})
    score = suite_score(rows, groups=recipes) if rows else None
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
        "recipes": recipe_summary(score, recipes) if score else {},
        "added_after_results": added,
    }
    write_suite_report(out, plans, results, rows)
    return results
