"""The tuning-free recipe's configuration (``TuningFreeConfig``) and its seed shares.

Both stages read it, one way: ``experiments.tuningfree`` (BC and DAgger rounds, checks,
plots) and ``experiments.tuningfree_ppo`` (the optional PPO stage) import this module,
and it imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agents.bc import BCConfig
from agents.policy import PolicyConfig
from common import seeds as seed_ranges
from evaluation.reference_lrs import reference_lr as reference_entry
from experiments.task_mixture import MixTask
from experts.schedules import SCHEDULES

DEMO_SHARE = 50  # demonstration seeds per run seed: run seed s owns DEMONSTRATIONS[50 s: 50 s + 50]


@dataclass(frozen=True)
class TuningFreeConfig:
    """What the recipe trains on and how long.

    Attributes:
        env_id: the registered env id.
        options: ``gym.make`` options (dataset, total_steps, ...), the same as the
            reference LR's.
        reference_lr: the expert's LR (None: ``evaluation.reference_lrs``' entry).
        schedule: the expert's schedule (``experts.schedules``).
        spread: base LRs are drawn in ``[reference / spread, reference · spread]``.
        demo_episodes: the expert's episodes of round 0.
        rounds: DAgger rounds after round 0.
        episodes_per_round: the policy's episodes per DAgger round.
        validation_episodes: the expert's episodes (model-selection seeds, drawn base LRs)
            on which each round's action error is measured.
        check_ks: base LRs ``reference · 2^k`` of the per-round loss check (validation
            losses; the test split is never read during training).
        check_seeds: model-selection seeds per ``k`` of that check.
        curve_ks: base LRs of the final LR-curve plot (one held-out seed each).
        bc: each round's fit (on the aggregate of every round so far).
        policy: the actor-critic's architecture.
        extra_tasks: a mixture: further tasks (trainees, datasets, budgets, each with its
            own reference LR) whose episodes join round 0 and every DAgger round. Their
            observation and action spaces must equal the main env's. The checks, the LR
            curves and the validation episodes stay on the main env.
        episodes_per_extra_task: each further task's episodes in round 0 and in every
            DAgger round (beside ``demo_episodes`` / ``episodes_per_round`` of the main env).
    """

    env_id: str = "LRSchedule-MLP-v0"
    options: dict[str, Any] = field(default_factory=lambda: {"dataset": "mnist"})
    reference_lr: float | None = None
    schedule: str = "linear_warmup"
    spread: float = 8.0
    demo_episodes: int = 16
    rounds: int = 4
    episodes_per_round: int = 16
    validation_episodes: int = 4
    check_ks: tuple[int, ...] = (-3, 0, 3)
    check_seeds: int = 2
    curve_ks: tuple[int, ...] = (-3, -2, -1, 0, 1, 2, 3)
    bc: BCConfig = field(default_factory=lambda: BCConfig(epochs=30, critic_epochs=0))
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    extra_tasks: tuple[MixTask, ...] = ()
    episodes_per_extra_task: int = 4

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"schedule={self.schedule!r} is invalid; valid: {', '.join(SCHEDULES)}"
            )
        if not self.spread >= 1:
            raise ValueError(f"spread={self.spread!r} is invalid; expected a number >= 1")
        for name in ("demo_episodes", "episodes_per_round", "validation_episodes", "check_seeds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r} is invalid; expected >= 1")
        if self.episodes_per_extra_task < 1:
            raise ValueError(
                f"episodes_per_extra_task={self.episodes_per_extra_task!r} is "
                "invalid; expected >= 1"
            )
        n_demos = self.demo_episodes + self._extra_episodes()
        if n_demos > DEMO_SHARE:
            raise ValueError(
                f"demo_episodes={self.demo_episodes} (+ {self._extra_episodes()} of the further "
                f"tasks) is invalid; at most {DEMO_SHARE} in all"
            )
        if self.rounds < 0:
            raise ValueError(f"rounds={self.rounds!r} is invalid; expected an integer >= 0")

    def reference(self) -> float:
        """The expert's LR: the given one, or the reference table's for the env."""
        if self.reference_lr is not None:
            return float(self.reference_lr)
        entry = reference_entry(self.env_id)
        total = self.options.get("total_steps", entry.total_steps)
        if (
            self.options.get("dataset", entry.dataset) != entry.dataset
            or total != entry.total_steps
        ):
            raise ValueError(
                f"the reference LR of {self.env_id} was tuned on {entry.dataset} with "
                f"total_steps={entry.total_steps}; options {self.options} differ: pass reference_lr"
            )
        return entry.lr

    def round_seeds(self, seed: int) -> list[list[int]]:
        """Round 0's (demonstration) and each DAgger round's (RL training) episode seeds."""
        n_seeds = len(seed_ranges.DEMONSTRATIONS) // DEMO_SHARE
        if not (isinstance(seed, int) and 0 <= seed < n_seeds):
            raise ValueError(
                f"run seed {seed!r} is invalid; expected an integer in 0..{n_seeds - 1} (each "
                f"owns {DEMO_SHARE} demonstration seeds and an RL-training block)"
            )
        demos = seed_ranges.DEMONSTRATIONS[seed * DEMO_SHARE : (seed + 1) * DEMO_SHARE]
        block = seed_ranges.rl_training_block(seed)
        n = self.episodes_per_round + self._extra_episodes()
        return [list(demos[: self.demo_episodes + self._extra_episodes()])] + [
            list(block[r * n : (r + 1) * n]) for r in range(self.rounds)
        ]

    def _extra_episodes(self) -> int:
        return len(self.extra_tasks) * self.episodes_per_extra_task

    def round_tasks(self, r: int) -> list[MixTask | None]:
        """The task of each of round ``r``'s episodes, in the order of its seeds: None (the
        main env) for the first ``demo_episodes`` / ``episodes_per_round``, then each further
        task's ``episodes_per_extra_task``."""
        n = self.demo_episodes if r == 0 else self.episodes_per_round
        return [None] * n + [
            t for t in self.extra_tasks for _ in range(self.episodes_per_extra_task)
        ]
