"""Building envs from a script's options, and the signature a policy file keeps of its env.

:class:`EnvOptions` is the one way scripts turn their arguments into ``gym.make``
keyword arguments (a field left at None keeps the registered id's default); its
fields with a fixed set of values are ``Literal`` types taken from where those values
are defined (rewards, trainees), so a script's ``--help`` lists them and its parser
refuses any other. :func:`check_env_ids` refuses an unregistered env id.
:func:`env_signature` records what a policy depends on; :func:`signature_mismatches`
says how two signatures differ.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, get_args

import gymnasium as gym

from envs.config import ActionType
from envs.rewards import RewardName
from trainees.image import ImageDatasetName
from trainees.language import GPTDatasetName, GPTPreset

# every trainee's datasets: the image trainees', then the GPT's corpora
DatasetName = Literal[ImageDatasetName, GPTDatasetName]


DATASETS: tuple[str, ...] = get_args(DatasetName)


ENV_ID_PREFIX = "LRSchedule-"


@dataclass(frozen=True)
class EnvOptions:
    """Options passed to ``gym.make``; None keeps the registered id's default.

    Attributes:
        dataset: the trainee's dataset (mnist | digits | mnist_permuted | mnist_14;
            shakespeare_char | enwik8 | text8; the GPT's python_stdlib too).
        preset: GPT preset (tiny | small).
        data_dir: folder (or file) holding the dataset; authoritative when given.
        total_steps: optimizer steps per episode (the training budget).
        base_lr: the trainee's reference learning rate.
        steps_per_action: optimizer steps run at the LR one action sets.
        eval_every: optimizer steps between validation evaluations.
        window: optimizer steps (rows) in an observation.
        action_type: continuous | discrete.
        initial_lr_mult: LR multiplier before the first discrete action.
        reward: reward preset (stability | neg_val_loss | val_improvement | best_minus_val).
        base_lr_spread: task randomisation: each episode's base LR drawn log-uniformly in
            [base_lr / spread, base_lr x spread] (1: none).
    """

    dataset: DatasetName | None = None
    preset: GPTPreset | None = None
    data_dir: str | None = None
    total_steps: int | None = None
    base_lr: float | None = None
    steps_per_action: int | None = None
    eval_every: int | None = None
    window: int | None = None
    action_type: ActionType | None = None
    initial_lr_mult: float | None = None
    reward: RewardName | None = None
    base_lr_spread: float | None = None

    def kwargs(self) -> dict[str, Any]:
        """The options that are set, as ``gym.make`` keyword arguments."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    def make(self, env_id: str, **overrides: Any) -> gym.Env:
        """``gym.make(env_id, **self.kwargs(), **overrides)``; errors name the valid values."""
        return gym.make(env_id, **(self.kwargs() | overrides))


def lrschedule_ids() -> tuple[str, ...]:
    """The registered ``LRSchedule-*`` env ids, in registration order."""
    return tuple(i for i in gym.registry if i.startswith(ENV_ID_PREFIX))


def check_env_ids(*env_ids: str) -> None:
    """Refuse any id that is not registered with gymnasium.

    Raises:
        ValueError: naming the unknown ids and the registered ``LRSchedule-*`` ids.
    """
    unknown = [i for i in env_ids if i not in gym.registry]
    if unknown:
        raise ValueError(
            f"unknown env id(s) {', '.join(map(repr, unknown))}; "
            f"registered: {', '.join(lrschedule_ids())}"
        )
