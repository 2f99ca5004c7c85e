"""The LR-sensitivity sweep: each method's test loss as a function of the base LR it is given.

Every method that takes an LR runs at ``reference_lr · 2^k`` for each ``k`` (k = -3…3
by default) on the final-evaluation seeds; a method that takes none (Prodigy or DoG at
their authors' defaults, the LR range test) runs once per seed and is a horizontal band.
The LR goes where the method says: the base LR of the schedule (cosine, Schedule-Free,
Mechanic, Adam-HD) or an optimizer's initial estimate (``Method.lr_option``: Prodigy's
and D-Adaptation's ``d0``). Runs are the harness's (``evaluation.runs.execute``), stored
and resumed by its run store, on its backends; the statistics are ``common.stats``'.

Each method is compared with the reference method (tuned cosine) at ``k = 0``, paired on
seeds. Two summaries per method: the widest run of consecutive ``k`` over which it stays
within ``+TOLERANCE`` of that reference (paired mean difference; and, less strictly, with
the difference's CI reaching below ``+TOLERANCE``), and its worst difference over the sweep.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from common import seeds as seed_ranges
from common.stats import iqm_interval, paired_difference
from evaluation.backends import Backend
from evaluation.methods import METHODS, Method, policy_method
from evaluation.report import loss_score
from evaluation.runs import RunSpec
from evaluation.store import RunStore, added_after_results, open_folder

SeedRange = Literal["final_evaluation", "baseline_tuning", "held_out"]
TOLERANCE = 0.005  # test loss within which a method "holds" tuned cosine's quality
K_VALUES = tuple(range(-3, 4))


@dataclass(frozen=True)
class Sweep:
    """One env's sweep: methods x LR factors ``2^k`` x final seeds.

    Attributes:
        env_id: the registered env id.
        methods: the methods (``reference`` among them, taking an LR).
        reference_lr: the LR at ``k = 0`` (``evaluation.reference_lrs``).
        ks: the exponents of the LR factors.
        final_seeds: the seeds, all of ``seed_range``.
        options: ``gym.make`` options (dataset, total_steps, preset, data_dir...).
        reference: the method every other is compared with, at ``k = 0``.
        seed_range: ``final_evaluation`` (a comparison of methods), or ``baseline_tuning``
            for a sweep whose results choose something (the reward presets' ranking,
            ``evaluation.reward_ranking``), so that no choice is made on final seeds;
            ``held_out`` for the validation suite that model selection reads
            (``evaluation.suite.VALIDATION_SUITE``).
    """

    env_id: str
    methods: tuple[Method, ...]
    reference_lr: float
    ks: tuple[int, ...] = K_VALUES
    final_seeds: tuple[int, ...] = tuple(seed_ranges.take("final_evaluation", 10))
    options: dict[str, Any] = field(default_factory=dict)
    reference: str = "cosine"
    seed_range: SeedRange = "final_evaluation"

    def __post_init__(self) -> None:
        names = [m.name for m in self.methods]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"method names must be unique and non-empty: {names}")
        ref = {m.name: m for m in self.methods}.get(self.reference)
        if ref is None or not ref.takes_lr:
            raise ValueError(
                f"reference={self.reference!r} must be a method of the sweep that takes an "
                f"LR; methods: {', '.join(names)}"
            )
        if 0 not in self.ks or len(set(self.ks)) != len(self.ks):
            raise ValueError(f"ks={self.ks} must be distinct integers including 0")
        if not (math.isfinite(self.reference_lr) and self.reference_lr > 0):
            raise ValueError(f"reference_lr={self.reference_lr} must be a finite number > 0")
        if self.seed_range not in get_args(SeedRange):
            raise ValueError(
                f"seed_range={self.seed_range!r} is invalid; valid: {', '.join(get_args(SeedRange))}"
            )
        final = seed_ranges.RANGES[self.seed_range]
        bad = sorted(s for s in self.final_seeds if s not in final)
        if bad or not self.final_seeds:
            raise ValueError(
                f"final seeds {bad or '(none)'} are invalid: this sweep runs on {self.seed_range} "
                f"seeds only ({final.start}..{final.stop - 1}), never on training or tuning ones"
            )

    def lr(self, k: int) -> float:
        """The LR of factor ``2^k``."""
        return self.reference_lr * 2.0**k

    def specs(self) -> list[RunSpec]:
        """Every run: LR-taking methods at each ``k``, the others once, on every seed."""
        opts = tuple(sorted(self.options.items()))
        out = []
        for m in self.methods:
            lrs = [self.lr(k) for k in self.ks] if m.takes_lr else [m.base_lr]
            phase = "final" if self.seed_range == "final_evaluation" else "tune"
            out += [
                RunSpec(phase, self.env_id, opts, m, lr, s) for lr in lrs for s in self.final_seeds
            ]
        return out

    @functools.cached_property
    def _lr_methods(self) -> frozenset[str]:
        """The names of the methods that take an LR."""
        return frozenset(m.name for m in self.methods if m.takes_lr)

    def k_of(self, run: dict[str, Any]) -> int | None:
        """The ``k`` of a run (None for a method that takes no LR)."""
        lr = run["given_lr"]
        if run["method"] not in self._lr_methods or lr is None:
            return None
        return round(math.log2(lr / self.reference_lr))

    def to_json(self) -> dict[str, Any]:
        """Plain values, for the run folder's ``grid.json`` (a resume must find the same)."""
        out = json.loads(json.dumps(dataclasses.asdict(self), default=list))
        if self.seed_range == "final_evaluation":  # added later: folders before it match
            del out["seed_range"]
        return out


def check_action_bounds(
    min_lr_mult: float, max_lr_mult: float, ks: Sequence[int], spare: float = 2.0
) -> dict[str, Any]:
    """Whether a policy given base LR ``reference · 2^k`` can reach the reference LR.

    It needs the multiplier ``2^-k`` inside ``[min_lr_mult, max_lr_mult]``, with a factor
    ``spare`` to spare on either side. Returns ``ok``, and per ``k`` the needed multiplier
    and the room on each side (``max / needed``, ``needed / min``).
    """
    rows = []
    for k in ks:
        need = 2.0 ** (-k)
        rows.append(
            {"k": k, "needed": need, "room_up": max_lr_mult / need, "room_down": need / min_lr_mult}
        )
    ok = all(r["room_up"] >= spare and r["room_down"] >= spare for r in rows)
    return {
        "ok": ok,
        "spare": spare,
        "min_lr_mult": min_lr_mult,
        "max_lr_mult": max_lr_mult,
        "ks": rows,
    }


def run_sweep(
    sweep: Sweep,
    folder: str | Path,
    backend: Backend,
    *,
    progress: bool = True,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run (or resume) ``sweep`` in ``folder``: the finished runs are not run again.

    Returns ``{"runs": [...], "preregistered": [...], "added_after_results": [...]}``.
    """
    store = RunStore(open_folder(folder, sweep))
    added = added_after_results(folder, sweep)
    runs = store.run(
        sweep.specs(), backend, desc=f"sweep {sweep.env_id}", progress=progress, on_result=on_result
    )
    return {
        "runs": runs,
        "preregistered": [m.name for m in sweep.methods if m.name not in added],
        "added_after_results": added,
    }


def _widest(within: Sequence[bool], ks: Sequence[int]) -> list[int]:
    """The longest run of consecutive ``ks`` (in order) where ``within`` holds."""
    best: list[int] = []
    cur: list[int] = []
    for k, ok in zip(ks, within, strict=True):
        cur = [*cur, k] if ok else []
        best = cur if len(cur) > len(best) else best
    return best


def summarize_sweep(
    sweep: Sweep,
    runs: Sequence[dict[str, Any]],
    *,
    seed: int = 0,
    pairs: Sequence[tuple[str, str]] = (),
) -> dict:
    """Per method and ``k``: test-loss IQM with its CI and the paired difference with the
    reference at ``k = 0``; per method the two summaries (module docstring); for each
    ``(a, b)`` of ``pairs`` the paired difference a - b at every ``k`` (``pair_differences``)."""
    ref_runs = sorted(
        (r for r in runs if r["method"] == sweep.reference and sweep.k_of(r) == 0),
        key=lambda r: r["seed"],
    )
    ref = {r["seed"]: loss_score(r) for r in ref_runs}
    methods = {}
    for m in sweep.methods:
        points = []
        for k in sweep.ks if m.takes_lr else [None]:
            rs = sorted(
                (r for r in runs if r["method"] == m.name and sweep.k_of(r) == k),
                key=lambda r: r["seed"],
            )
            if not rs:
                continue
            scores = [loss_score(r) for r in rs]
            if [r["seed"] for r in rs] != sorted(ref):
                raise ValueError(f"{m.name} at k={k} and the reference differ in seeds")
            delta = paired_difference(np.subtract(scores, [ref[r["seed"]] for r in rs]), seed=seed)
            points.append(
                {
                    "k": k,
                    "lr": rs[0]["given_lr"],
                    "test_loss": iqm_interval(scores, seed=seed),
                    "delta": delta,
                    "diverged": sum(bool(r["diverged"]) for r in rs),
                    "n": len(rs),
                }
            )
        if not points:
            continue
        if m.takes_lr:
            ks = [p["k"] for p in points]
            by_mean = _widest([p["delta"]["mean"] <= TOLERANCE for p in points], ks)
            by_ci = _widest([p["delta"]["ci_low"] <= TOLERANCE for p in points], ks)
        else:  # one point: it holds over the whole sweep or over none of it
            p = points[0]
            by_mean = list(sweep.ks) if p["delta"]["mean"] <= TOLERANCE else []
            by_ci = list(sweep.ks) if p["delta"]["ci_low"] <= TOLERANCE else []
        worst = max(points, key=lambda p: p["delta"]["mean"])
        methods[m.name] = {
            "takes_lr": m.takes_lr,
            "points": points,
            "widest_within": by_mean,
            "widest_within_ci": by_ci,
            "worst_delta": {
                "k": worst["k"],
                **{x: worst["delta"][x] for x in ("mean", "ci_low", "ci_high")},
            },
        }
    return {
        "reference": sweep.reference,
        "reference_lr": sweep.reference_lr,
        "tolerance": TOLERANCE,
        "n_compared": len(methods) - 1,
        "methods": methods,
        "policies_vs_lr_free": policies_vs_lr_free(sweep, runs, seed=seed),
        "forgetting": forgetting_summary(sweep, runs, seed=seed),
        "pairs": pair_differences(sweep, runs, pairs, seed=seed),
    }


def check_pairs(names: Sequence[str], pairs: Sequence[str]) -> list[tuple[str, str]]:
    """``"A:B"`` strings as ``(A, B)``, both among the method ``names`` of a sweep.

    Raises:
        ValueError: a string that is not ``A:B`` with two different methods of the sweep.
    """
    out = []
    for text in pairs:
        a, sep, b = text.partition(":")
        if not sep or a not in names or b not in names or a == b:
            raise ValueError(
                f"pair {text!r} is invalid; expected A:B, two different methods "
                f"of the sweep: {', '.join(names)}"
            )
        out.append((a, b))
    return out


def pair_differences(
    sweep: Sweep,
    runs: Sequence[dict[str, Any]],
    pairs: Sequence[tuple[str, str]],
    *,
    seed: int = 0,
) -> dict[str, list[dict[str, Any]]]:
    """For each ``(a, b)``: at every ``k``, the paired test-loss difference a - b on the
    seeds both ran, with its CI (an ablation: what one stage of a recipe changed). A method
    without an LR enters at every ``k`` with its one run per seed. ``{"a - b": [per k]}``."""
    takes = {m.name: m.takes_lr for m in sweep.methods}

    def scores(name: str, k: int) -> dict[int, float]:
        at = k if takes[name] else None
        return {
            r["seed"]: loss_score(r) for r in runs if r["method"] == name and sweep.k_of(r) == at
        }

    out: dict[str, list[dict[str, Any]]] = {}
    for a, b in pairs:
        rows = []
        for k in sweep.ks:
            sa, sb = scores(a, k), scores(b, k)
            common = sorted(sa.keys() & sb.keys())
            if common:
                diffs = [sa[s] - sb[s] for s in common]
                rows.append(
                    {
                        "k": k,
                        "n": len(common),
                        "delta": paired_difference(np.asarray(diffs), seed=seed),
                    }
                )
        out[f"{a} - {b}"] = rows
    return out


def policies_vs_lr_free(
    sweep: Sweep, runs: Sequence[dict[str, Any]], *, seed: int = 0
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Each learned policy against each method that takes no LR (Prodigy, D-Adaptation,
    the range test), at every ``k``: the paired test-loss difference (policy - method) on
    seeds with its CI; below 0 the policy is better. ``{policy: {method: [per k]}}``."""
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for pol in (m for m in sweep.methods if m.kind == "policy" and m.takes_lr):
        for other in (m for m in sweep.methods if not m.takes_lr):
            pair = (pol.name, other.name)
            rows = pair_differences(sweep, runs, [pair], seed=seed)[" - ".join(pair)]
            if rows:
                out.setdefault(pol.name, {})[other.name] = rows
    return out


def forgetting_summary(sweep: Sweep, runs: Sequence[dict[str, Any]], *, seed: int = 0) -> dict:
    """Per method and ``k``: the IQM [CI] of ``final_info["forgetting"]`` (a LoRA run's
    source-corpus loss at the end minus at the start), for runs that report it."""
    out: dict[str, list[dict[str, Any]]] = {}
    for m in sweep.methods:
        for k in sweep.ks if m.takes_lr else [None]:
            values = [
                r["final_info"]["forgetting"]
                for r in runs
                if r["method"] == m.name
                and sweep.k_of(r) == k
                and (r.get("final_info") or {}).get("forgetting") is not None
            ]
            if values:
                out.setdefault(m.name, []).append(
                    {"k": k, "n": len(values), "forgetting": iqm_interval(values, seed=seed)}
                )
    return out


def sweep_from_plan(plan: dict[str, Any], **overrides: Any) -> Sweep:
    """A sweep from a pre-registration plan (``evaluation/plans/*.json``): env, options,
    methods (names of ``METHODS``), policies (``"name=path"`` of policy files, each run
    at every swept LR as its base LR: ``policy_method(..., takes_lr=True)``), ks, final
    seeds, reference LR; ``overrides`` on top (e.g. ``data_dir`` into the options is
    passed as ``options=``)."""
    unknown = [m for m in plan["methods"] if m not in METHODS]
    if unknown:
        raise ValueError(f"plan methods {unknown} are not methods; valid: {', '.join(METHODS)}")
    policies = tuple(policy_method(p, takes_lr=True) for p in plan.get("policies", []))
    kw = {
        "env_id": plan["env_id"],
        "methods": tuple(METHODS[m] for m in plan["methods"]) + policies,
        "reference_lr": float(plan["reference_lr"]),
        "ks": tuple(plan["ks"]),
        "final_seeds": tuple(plan["final_seeds"]),
        "options": dict(plan.get("options", {})),
        "reference": plan.get("reference", "cosine"),
        "seed_range": plan.get("seed_range", "final_evaluation"),
    }
    return Sweep(**(kw | overrides))
