"""The score of methods over a suite of workloads, each swept from base LRs reference x 2^k.

Per workload, each method's paired Δ test loss vs the reference (tuned cosine: the
reference method at k = 0) at every k, with bootstrap CIs over seeds, and its worst k.
Across workloads, a mean rank, so that no workload's loss scale dominates: in each cell
(workload, k) the methods are ranked by their mean test loss over seeds (1 = best, ties
share the mean rank; a method without an LR enters every k of its workload with its one
value), ranks are averaged over the k of a workload, then over workloads with equal
weight. Its CI resamples each workload's seeds (the same resample for every method: the
comparison stays paired) and ranks again.

The input is a plain table, one row per run: ``{"workload", "method", "k", "seed",
"test_loss"}`` (``k`` None for a method that takes no LR; a diverged run's score is
``evaluation.report.loss_score``'s, its initial loss, so every score is finite).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

from common.stats import paired_difference

Row = Mapping[str, Any]


def _table(rows: Sequence[Row], reference: str):
    """``{workload: (seeds, ks, {method: {k: {seed: loss}}})}``, checked complete.

    Raises:
        ValueError: a workload without the reference at k = 0, or a method missing a seed
            the reference ran, naming them.
    """
    by: dict[str, dict[str, dict[Any, dict[int, float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(dict))
    )
    for r in rows:
        loss = r["test_loss"]
        if loss is None or not np.isfinite(loss):
            raise ValueError(
                f"{r['method']} on {r['workload']!r} (k={r['k']}, seed "
                f"{r['seed']}) has test_loss {loss!r}: score a diverged run with "
                "evaluation.report.loss_score (its initial loss)"
            )
        by[r["workload"]][r["method"]][r["k"]][int(r["seed"])] = float(loss)
    out = {}
    for w, methods in sorted(by.items()):
        if 0 not in methods.get(reference, {}):
            raise ValueError(f"workload {w!r} has no {reference!r} run at k = 0 (the reference)")
        seeds = sorted(methods[reference][0])
        ks = sorted(k for k in methods[reference] if k is not None)
        for m, per_k in methods.items():
            if None not in per_k and sorted(per_k) != ks:
                missing = sorted(set(ks) - set(per_k))
                raise ValueError(
                    f"workload {w!r}: {m} has no runs at k = {missing} (the reference ran k = {ks})"
                )
            for k, got in per_k.items():
                if sorted(got) != seeds:
                    raise ValueError(
                        f"workload {w!r}: {m} at k={k} ran seeds {sorted(got)}, "
                        f"the reference {seeds}"
                    )
        out[w] = (seeds, ks, methods)
    return out


def _at(per_k: Mapping[Any, Mapping[int, float]], k: int) -> Mapping[int, float] | None:
    """A method's runs at ``k``: its own, or its one LR-free point."""
    return per_k.get(k, per_k.get(None))


def _leagues(names: Sequence[str], groups: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """The pools ranked together: every method, or with ``groups`` (training seeds of one
    recipe each) one pool per seed index, holding the ungrouped methods and the i-th
    member of every group, so a recipe enters each pool once, never against itself.

    Raises:
        ValueError: groups of different sizes, or a member that is no method.
    """
    if not groups:
        return [list(names)]
    sizes = {len(g) for g in groups.values()}
    members = [m for g in groups.values() for m in g]
    if len(sizes) != 1 or not set(members) <= set(names) or len(set(members)) != len(members):
        raise ValueError(
            f"groups {dict(groups)} must be disjoint, of one size, and of methods "
            f"({', '.join(names)})"
        )
    fixed = [m for m in names if m not in members]
    return [sorted(fixed + [g[i] for g in groups.values()]) for i in range(sizes.pop())]


def _mean_ranks(table, pick, groups: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """Mean rank per method over workloads (each weighted equally), ``pick(w, seeds)``
    choosing the seeds (indices) of each workload; a method in several pools (``_leagues``)
    takes its mean rank over them."""
    totals: dict[str, list[float]] = defaultdict(list)
    for w, (seeds, ks, methods) in table.items():
        chosen = [seeds[i] for i in pick(w, len(seeds))]
        per_method: dict[str, list[float]] = defaultdict(list)
        for pool in _leagues(sorted(methods), groups):
            for k in ks:
                means = [np.mean([_at(methods[m], k)[s] for s in chosen]) for m in pool]
                for name, rank in zip(pool, rankdata(means), strict=True):  # 1 = lowest loss
                    per_method[name].append(float(rank))
        for name, ranks in per_method.items():
            totals[name].append(float(np.mean(ranks)))
    return {m: float(np.mean(r)) for m, r in totals.items()}


def suite_score(
    rows: Sequence[Row],
    *,
    reference: str = "cosine",
    groups: Mapping[str, Sequence[str]] | None = None,
    seed: int = 0,
    n_boot: int = 2000,
    level: float = 0.95,
) -> dict[str, Any]:
    """Per workload and method: the paired Δ vs the reference at k = 0 at every k and the
    worst one; across workloads: each method's mean rank with a bootstrap CI.

    Every method must appear on every workload (a mean rank over different workloads
    compares nothing). ``groups`` (``{recipe: [policy per training seed]}``) ranks each
    training seed against the other methods, never against its own recipe's other seeds
    (``_leagues``): the ungrouped methods' ranks are their means over those pools, so they
    do not depend on how many seeds a recipe lists.

    Raises:
        ValueError: a workload without the reference at k = 0, a method that misses a
            seed or a workload, naming it.
    """
    table = _table(rows, reference)
    everywhere = set.intersection(*(set(methods) for _, _, methods in table.values()))
    for w, (_, _, methods) in table.items():
        missing = sorted(set(methods) - everywhere)
        if missing:
            raise ValueError(f"{missing} ran on {w!r} but not on every workload")
    per_workload: dict[str, dict[str, Any]] = {}
    for w, (seeds, ks, methods) in table.items():
        ref = methods[reference][0]
        out = {}
        for m, per_k in sorted(methods.items()):
            deltas = {}
            for k in ks if None not in per_k else [None]:
                runs = _at(per_k, k)
                deltas[k] = paired_difference([runs[s] - ref[s] for s in seeds], seed=seed)
            worst_k = max(deltas, key=lambda k: deltas[k]["mean"])
            out[m] = {
                "takes_lr": None not in per_k,
                "delta": deltas,
                "worst": {"k": worst_k, **deltas[worst_k]},
            }
        per_workload[w] = out
    rng = np.random.default_rng(seed)
    groups = dict(groups or {})
    point = _mean_ranks(table, lambda w, n: range(n), groups)
    boots = [_mean_ranks(table, lambda w, n: rng.integers(0, n, n), groups) for _ in range(n_boot)]
    alpha = (1.0 - level) / 2
    ranks = {
        m: {
            "mean_rank": point[m],
            "ci_low": float(np.quantile([b[m] for b in boots], alpha)),
            "ci_high": float(np.quantile([b[m] for b in boots], 1.0 - alpha)),
        }
        for m in sorted(point)
    }
    return {
        "reference": reference,
        "workloads": per_workload,
        "mean_rank": ranks,
        "n_methods": len(point),
        "pool_size": len(_leagues(sorted(point), groups)[0]),
        "groups": groups,
    }


def recipe_summary(
    score: Mapping[str, Any], recipes: Mapping[str, Sequence[str]]
) -> dict[str, dict[str, Any]]:
    """Each recipe over its training seeds (its policies): per workload the mean and the
    worst of the seeds' worst Δ vs the reference, and the same of their mean ranks; every
    seed's own figures stay in the score.

    Raises:
        ValueError: a recipe naming a method the score does not hold.
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
