"""The signature a policy file keeps of its env: what the policy depends on, how two differ, and the env it describes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import gymnasium as gym

from envs.config import EnvConfig
from envs.options import EnvOptions

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
        "base_lr_spread": config.base_lr_spread,  # recorded: a policy's training tasks
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
_ENV_KEYS = tuple(f.name for f in fields(EnvConfig) if f.name in CHECKED)


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
