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


RL_BLOCK = 10_000  # RL training seeds per run seed: --seed s trains on its own block


def rl_training_block(seed: int, size: int = RL_BLOCK) -> range:
    """The RL training seeds of run seed ``seed``: block ``seed`` of ``RL_TRAINING``.

    Runs with different seeds train on disjoint episodes, and never on a seed of any
    other range.

    Raises:
        ValueError: ``seed`` outside ``0 .. len(RL_TRAINING) // size - 1``, naming the range.
    """
    n_blocks = len(RL_TRAINING) // size
    if not (isinstance(seed, int) and 0 <= seed < n_blocks):
        raise ValueError(
            f"run seed {seed!r} is invalid; expected an integer in 0..{n_blocks - 1} "
            f"(each owns {size:,} of the RL training seeds {RL_TRAINING.start:,}..)"
        )
    return RL_TRAINING[seed * size : (seed + 1) * size]


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
