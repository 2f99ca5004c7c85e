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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

import gymnasium as gym

from envs.rewards import RewardName
from trainees.data.chars import CorpusName
from trainees.image import ImageDatasetName
from trainees.language import GPTPreset

if TYPE_CHECKING:
    from envs.lrschedule_env import EnvConfig

# defined here, not in envs.lrschedule_env (which imports this module), so that the
# annotations below resolve at run time, when tyro reads them
ActionType = Literal["continuous", "discrete"]
ACTION_TYPES: tuple[str, ...] = get_args(ActionType)
# every trainee's datasets: the image trainees', then the GPT's corpora
DatasetName = Literal[ImageDatasetName, CorpusName]
DATASETS: tuple[str, ...] = get_args(DatasetName)
ENV_ID_PREFIX = "LRSchedule-"


@dataclass(frozen=True)
class EnvOptions:
    """Options passed to ``gym.make``; None keeps the registered id's default.

    Attributes:
        dataset: the trainee's dataset (mnist | digits; shakespeare_char | enwik8 | text8).
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


# trainee options that describe the machine, not the task: not part of a signature
_LOCAL_OPTIONS = ("data_dir", "device")
# the policy network cannot take another observation layout or action space at all
STRUCTURAL = ("window", "features", "action_type", "factors")
# what a policy's behaviour depends on; checked when a policy file is loaded for an env
CHECKED = (
    "env_id", "trainee", *STRUCTURAL, "min_lr_mult", "max_lr_mult", "initial_lr_mult",
    "steps_per_action", "eval_every", "reward", "reward_params", "reward_loss_cap",
    "divergence_margin",
)  # fmt: skip


def env_signature(
    *,
    env_id: str | None,
    trainee: str,
    trainee_options: dict[str, Any],
    config: EnvConfig,
    features: Sequence[str],
) -> dict[str, Any]:
    """Plain-value description of an env: id, trainee, observation, actions, reward.

    For continuous actions ``factors`` and ``initial_lr_mult`` are None (unused).
    """
    discrete = config.action_type == "discrete"
    return {
        "env_id": env_id,
        "trainee": trainee,
        "trainee_options": {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in sorted(trainee_options.items())
            if k not in _LOCAL_OPTIONS
        },
        "window": config.window,
        "features": list(features),
        "action_type": config.action_type,
        "factors": list(config.factors) if discrete else None,
        "initial_lr_mult": config.initial_lr_mult if discrete else None,
        "min_lr_mult": config.min_lr_mult,
        "max_lr_mult": config.max_lr_mult,
        "steps_per_action": config.steps_per_action,
        "eval_every": config.eval_every,
        "reward": config.reward,
        "reward_params": dict(config.reward_params or {}),
        "reward_loss_cap": config.reward_loss_cap,
        "divergence_margin": config.divergence_margin,
    }


def signature_mismatches(
    stored: dict[str, Any], current: dict[str, Any], keys: Sequence[str] = CHECKED
) -> list[str]:
    """``"key: policy X, env Y"`` for each of ``keys`` on which the signatures differ.

    An ``env_id`` of None (an env built without ``gym.make``) matches any id; its
    trainee is still compared.
    """
    out = []
    for key in keys:
        a, b = stored.get(key), current.get(key)
        if key == "env_id" and (a is None or b is None):
            continue
        if a != b:
            out.append(f"{key}: policy {a!r}, env {b!r}")
    return out


# signature entries that are env options (EnvConfig fields) of the same name
_ENV_KEYS = (
    "window", "action_type", "factors", "initial_lr_mult", "min_lr_mult", "max_lr_mult",
    "steps_per_action", "eval_every", "reward", "reward_params", "reward_loss_cap",
    "divergence_margin",
)  # fmt: skip


def signature_kwargs(
    signature: dict[str, Any], options: EnvOptions | None = None, **overrides: Any
) -> tuple[str, dict[str, Any]]:
    """The env id and ``gym.make`` options of the env a signature describes.

    ``options`` and ``overrides`` go on top. Machine-specific options (``data_dir``,
    ``device``) are not in a signature: pass them in ``options``.

    Raises:
        ValueError: the signature has no env id (its env was not built by ``gym.make``).
    """
    if signature.get("env_id") is None:
        raise ValueError(
            f"the signature names no env id (trainee {signature.get('trainee')!r} was not "
            "built with gym.make): pass the env id explicitly"
        )
    kwargs = dict(signature.get("trainee_options", {}))
    for key in _ENV_KEYS:
        value = signature.get(key)
        if value is not None and value != {}:
            kwargs[key] = tuple(value) if isinstance(value, list) else value
    kwargs |= (options.kwargs() if options else {}) | overrides
    return signature["env_id"], kwargs


def make_from_signature(
    signature: dict[str, Any], options: EnvOptions | None = None, **overrides: Any
) -> gym.Env:
    """Re-create the env a signature describes (e.g. a policy file's), ``options`` on top.

    Raises:
        ValueError: the signature has no env id (its env was not built by ``gym.make``).
    """
    env_id, kwargs = signature_kwargs(signature, options, **overrides)
    return gym.make(env_id, **kwargs)
