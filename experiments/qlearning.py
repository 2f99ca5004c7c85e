"""The baseline-vs-Q-learning experiment: run types, per-seed metrics, summaries."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from envs.options import EnvOptions

METRICS = (
    "final_train_loss",
    "best_val_loss",
    "total_train_time",
    "avg_inference_tokens_per_second",
)

# Each run type: how the LR is chosen. "schedule" runs use the continuous env with the
# warm-up + cosine expert; "qlearning" runs the discrete env, acting every eval interval.
RUN_TYPES: dict[str, dict[str, Any]] = {
    "baseline_cosine": dict(kind="schedule"),
    "qlearning": dict(kind="qlearning", reward="neg_val_loss"),
    "qlearning_low_initial_lr": dict(kind="qlearning", reward="neg_val_loss", initial_lr_mult=0.3),
    "qlearning_improvement": dict(kind="qlearning", reward="val_improvement"),
    "qlearning_eps_decay": dict(
        kind="qlearning", reward="neg_val_loss", epsilon=0.5, epsilon_decay=0.95, epsilon_min=0.01
    ),
}


def qlearning_options(
    base: EnvOptions, *, reward: str, interval: int, initial_lr_mult: float = 1.0
) -> EnvOptions:
    """Env options for a Q-learning agent: discrete factor actions, one per evaluation."""
    return dataclasses.replace(
        base, action_type="discrete", reward=reward, eval_every=interval,
        steps_per_action=interval, initial_lr_mult=initial_lr_mult,
    )  # fmt: skip


def run_options(run: dict[str, Any], base: EnvOptions, *, interval: int) -> EnvOptions:
    """Env options of a run type, on top of ``base`` (dataset, preset, budget)."""
    if run["kind"] == "qlearning":
        return qlearning_options(
            base, reward=run["reward"], interval=interval,
            initial_lr_mult=run.get("initial_lr_mult", 1.0),
        )  # fmt: skip
    return dataclasses.replace(base, eval_every=interval, steps_per_action=interval)


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (0 for a single value)."""
    a = np.asarray(values, dtype=np.float64)
    se = float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else 0.0
    return float(a.mean()), se


def summarize(per_seed: Sequence[dict[str, float]]) -> dict[str, dict[str, float]]:
    """``{metric: {"mean", "se", "n"}}`` over the seeds' final infos (metrics present in all)."""
    out = {}
    for m in METRICS:
        values = [r[m] for r in per_seed if m in r]
        if len(values) == len(per_seed) and values:
            mean, se = mean_se(values)
            out[m] = {"mean": mean, "se": se, "n": len(values)}
    return out


def markdown_table(summaries: dict[str, dict[str, dict[str, float]]]) -> str:
    """A markdown table: one row per run type, ``mean ± se`` per metric."""
    lines = ["| run | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
    for run, summary in summaries.items():
        cells = [
            f"{summary[m]['mean']:.4g} ± {summary[m]['se']:.2g}" if m in summary else "—"
            for m in METRICS
        ]
        lines.append(f"| {run} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def mean_curves(
    rows: Sequence[dict[str, Any]], key: str
) -> dict[str, tuple[list[int], list[float]]]:
    """Per run type (``row["run"]``), the mean over seeds of ``row[key]`` at each step."""
    out = {}
    for run in dict.fromkeys(r["run"] for r in rows):
        by_step: dict[int, list[float]] = {}
        for r in rows:
            if r["run"] == run:
                by_step.setdefault(r["step"], []).append(r[key])
        steps = sorted(by_step)
        out[run] = (steps, [float(np.mean(by_step[s])) for s in steps])
    return out
