"""Seed ranges, in one place, pairwise disjoint.

Every script defaults to these, so that no run used to train, select or tune a method
is ever used to evaluate it.
"""

from __future__ import annotations

DEMONSTRATIONS = range(0, 500)  # expert rollouts that BC imitates
MODEL_SELECTION = range(500, 1_000)  # held-out rollouts that pick a checkpoint (a BC epoch)
HELD_OUT = range(1_000, 2_000)  # held-out evaluation of a trained policy against its expert
BASELINE_TUNING = range(2_000, 3_000)  # tuning the base LR of hand-designed schedules
FINAL_EVALUATION = range(10_000, 11_000)  # the final comparison of methods
RL_TRAINING = range(100_000, 1_000_000)  # episodes that RL agents train on

RANGES: dict[str, range] = {
    "demonstrations": DEMONSTRATIONS,
    "model_selection": MODEL_SELECTION,
    "held_out": HELD_OUT,
    "baseline_tuning": BASELINE_TUNING,
    "final_evaluation": FINAL_EVALUATION,
    "rl_training": RL_TRAINING,
}


def take(name: str, n: int) -> list[int]:
    """The first ``n`` seeds of range ``name``.

    Raises:
        ValueError: an unknown range, or more seeds than it holds, naming the valid ones.
    """
    if name not in RANGES:
        raise ValueError(f"unknown seed range {name!r}; valid: {', '.join(RANGES)}")
    r = RANGES[name]
    if not 0 <= n <= len(r):
        raise ValueError(f"{n} seeds asked from {name!r}, which holds {len(r)} ({r.start}..)")
    return list(r[:n])
