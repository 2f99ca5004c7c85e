"""The grid: methods x envs x seeds, its tuning and final runs, and the base LR each tuned
method chooses on the tuning seeds."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from common import seeds as seed_ranges
from evaluation.methods import Method
from evaluation.runs import RunSpec


# -- the grid -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Grid:
    """Methods x envs x seeds.

    Attributes:
        envs: registered env ids.
        methods: the methods.
        options: ``gym.make`` options for every env (dataset, total_steps, data_dir...).
        final_seeds: final-evaluation seeds (``common.seeds.FINAL_EVALUATION``).
        tuning_seeds: tuning seeds (``common.seeds.BASELINE_TUNING``).
        lr_factors: the tuning grid, as multiples of the env's base LR.
        reference: the method that paired differences are taken against (one of ``methods``).
    """

    envs: tuple[str, ...]
    methods: tuple[Method, ...]
    options: dict[str, Any] = field(default_factory=dict)
    final_seeds: tuple[int, ...] = tuple(seed_ranges.take("final_evaluation", 10))
    tuning_seeds: tuple[int, ...] = tuple(seed_ranges.take("baseline_tuning", 3))
    lr_factors: tuple[float, ...] = tuple(2.0**k for k in range(-3, 4))
    reference: str = "cosine"

    def __post_init__(self) -> None:
        names = [m.name for m in self.methods]
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"method names must be unique and non-empty: {names}")
        if self.reference not in names:
            raise ValueError(
                f"reference={self.reference!r} is not a method of the grid; valid: "
                + ", ".join(names)
            )
        if not self.envs:
            raise ValueError("no env to evaluate on")
        check_seeds(self.final_seeds, self.tuning_seeds)
        if any(not (f > 0 and math.isfinite(f)) for f in self.lr_factors) or not self.lr_factors:
            raise ValueError(f"lr_factors={self.lr_factors} must be finite values > 0")

    def to_json(self) -> dict[str, Any]:
        """Plain values, for ``grid.json`` (a resumed run must find the same grid)."""
        return json.loads(json.dumps(dataclasses.asdict(self), default=list))


def check_seeds(final: Iterable[int], tuning: Iterable[int]) -> None:
    """Final seeds must come from the final-evaluation range, tuning seeds from the tuning
    range, so that they never overlap with each other or with any training seed.

    Raises:
        ValueError: naming the seeds outside their range.
    """
    for seeds, name in ((final, "final_evaluation"), (tuning, "baseline_tuning")):
        r = seed_ranges.RANGES[name]
        bad = sorted(s for s in seeds if s not in r)
        if bad:
            raise ValueError(f"seeds {bad} are outside the {name} range {r.start}..{r.stop - 1}")


def tuning_specs(grid: Grid, base_lrs: dict[str, float]) -> list[RunSpec]:
    """Every tuned method at every grid LR on every tuning seed."""
    opts = tuple(sorted(grid.options.items()))
    return [
        RunSpec("tune", env, opts, m, base_lrs[env] * f, s)
        for env in grid.envs
        for m in grid.methods
        if m.takes_lr
        for f in grid.lr_factors
        for s in grid.tuning_seeds
    ]


def final_specs(
    grid: Grid, chosen: dict[tuple[str, str], float | None], *, tuned: bool
) -> list[RunSpec]:
    """The final runs of the tuned (``tuned``) or the untuned methods."""
    opts = tuple(sorted(grid.options.items()))
    return [
        RunSpec("final", env, opts, m, chosen[env, m.name] if m.takes_lr else m.base_lr, s)
        for env in grid.envs
        for m in grid.methods
        if m.takes_lr == tuned
        for s in grid.final_seeds
    ]


def _given_lr(run: dict[str, Any]) -> float:
    """The LR a run was given: its base LR, or its ``lr_option``'s value (``d0``); runs
    stored before ``given_lr`` was recorded give their base LR."""
    return run.get("given_lr") or run["base_lr"]


def choose_base_lrs(grid: Grid, runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per env and tuned method: the base LR with the lowest mean final validation loss
    over the tuning seeds (a run that diverged counts as infinitely bad).

    Returns ``{env: {method: {"base_lr", "at_edge", "table": [{base_lr, mean_final_val_loss,
    diverged}]}}}``; ``at_edge`` warns that the best LR is the grid's smallest or largest.
    """
    out: dict[str, Any] = {}
    for env in grid.envs:
        out[env] = {}
        for m in (m for m in grid.methods if m.takes_lr):
            rows = sorted(
                (
                    r
                    for r in runs
                    if r["env_id"] == env and r["method"] == m.name and r["phase"] == "tune"
                ),
                key=_given_lr,
            )
            table = []
            for lr in sorted({_given_lr(r) for r in rows}):
                at = [r for r in rows if _given_lr(r) == lr]
                vals = [
                    math.inf
                    if r["diverged"] or r["final_val_loss"] is None
                    else r["final_val_loss"]
                    for r in at
                ]
                table.append(
                    {
                        "base_lr": lr,
                        "mean_final_val_loss": float(np.mean(vals)),
                        "diverged": sum(r["diverged"] for r in at),
                        "n": len(at),
                    }
                )
            best = min(range(len(table)), key=lambda i: table[i]["mean_final_val_loss"])
            out[env][m.name] = {
                "base_lr": table[best]["base_lr"],
                "at_edge": best in (0, len(table) - 1),
                "table": table,
            }
    return out


def env_base_lrs(grid: Grid) -> dict[str, float]:
    """The default base LR of each env of the grid (with the grid's options)."""
    out = {}
    for env_id in grid.envs:
        env = gym.make(env_id, **grid.options)
        out[env_id] = float(env.unwrapped.trainee.base_lr)
        env.close()
    return out
