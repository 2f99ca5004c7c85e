"""The transformer actor-critic policy, and saving it as one self-describing file.

A policy file knows the env it was trained on: :func:`load_policy` with ``env=`` refuses
an env with another id, observation, action space or reward unless told otherwise.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import io
import pickle
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy

from agents.transformer import WindowTransformer
from common.files import atomic_write_bytes
from envs.signature import STRUCTURAL, signature_mismatches

FORMAT = "lrschedule-gym-policy/2"  # /2: records the env, the discount and the version


@dataclass(frozen=True)
class PolicyConfig:
    """Architecture of the actor-critic.

    Attributes:
        features_dim: width of each transformer's output features.
        patch_size: observation rows per token.
        d_model: transformer width.
        n_layers: transformer layers.
        n_heads: attention heads.
        pi_hidden: hidden widths of the actor head.
        vf_hidden: hidden widths of the critic head.
        log_std_init: initial log standard deviation of the Gaussian (continuous actions).
    """

    features_dim: int = 64
    patch_size: int = 16
    d_model: int = 64
    n_layers: int = 4
    n_heads: int = 2
    pi_hidden: tuple[int, ...] = (64,)
    vf_hidden: tuple[int, ...] = (64,)
    log_std_init: float = -1.0

    def policy_kwargs(self) -> dict:
        """``policy_kwargs`` for SB3 (PPO or ``ActorCriticPolicy``): separate actor and critic."""
        return dict(
            features_extractor_class=WindowTransformer,
            features_extractor_kwargs=dict(
                features_dim=self.features_dim,
                patch_size=self.patch_size,
                d_model=self.d_model,
                n_layers=self.n_layers,
                n_heads=self.n_heads,
            ),
            share_features_extractor=False,
            net_arch=dict(pi=list(self.pi_hidden), vf=list(self.vf_hidden)),
            log_std_init=self.log_std_init,
        )


def _constant_lr(_: float) -> float:
    return 3e-4  # the policy's own optimizer is replaced by BC's and PPO's


def make_policy(
    observation_space: spaces.Box,
    action_space: spaces.Space,
    config: PolicyConfig | None = None,
    *,
    seed: int = 0,
) -> ActorCriticPolicy:
    """A fresh transformer actor-critic for the given spaces, initialised from ``seed``.

    SB3 initialises its layers from the global torch RNG; that is done here under a
    forked RNG seeded with ``seed``, so the caller's global RNG state is left untouched
    and the same seed gives the same network.
    """
    config = config or PolicyConfig()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ActorCriticPolicy(
            observation_space, action_space, _constant_lr, **config.policy_kwargs()
        )


def _space_spec(space: spaces.Space) -> dict:
    if isinstance(space, spaces.Box):
        return {
            "type": "box",
            "low": torch.from_numpy(space.low),
            "high": torch.from_numpy(space.high),
        }
    if isinstance(space, spaces.Discrete):
        return {"type": "discrete", "n": int(space.n)}
    raise ValueError(f"unsupported space {space}; expected Box or Discrete")


def _space_from_spec(spec: dict) -> spaces.Space:
    if spec["type"] == "box":
        return spaces.Box(spec["low"].numpy(), spec["high"].numpy(), dtype=np.float32)
    return spaces.Discrete(spec["n"])


def package_version() -> str:
    """The installed version of lrschedule-gym ("unknown" when run from a bare checkout)."""
    try:
        return importlib.metadata.version("lrschedule-gym")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _signature(env: gym.Env | Mapping[str, Any]) -> dict[str, Any]:
    """The env signature of an env (any wrapper of ``LRScheduleEnv``) or a signature dict."""
    if isinstance(env, Mapping):
        return dict(env)
    inner = env.unwrapped
    if not hasattr(inner, "signature"):
        raise TypeError(f"{type(inner).__name__} is not an LRScheduleEnv: it has no signature()")
    return inner.signature()


@dataclass(frozen=True)
class PolicyFile:
    """The contents of a policy file.

    Attributes:
        config: the network's architecture.
        env: signature of the env it was trained on (``envs.options.env_signature``).
        gamma: the discount it was trained with.
        version: lrschedule-gym version that wrote it.
        observation_space: the observation space of the network.
        action_space: the action space of the network.
        state_dict: the parameters.
    """

    config: PolicyConfig
    env: dict[str, Any]
    gamma: float
    version: str
    observation_space: spaces.Space
    action_space: spaces.Space
    state_dict: dict[str, torch.Tensor]


def save_policy(
    policy: ActorCriticPolicy,
    path: str | Path,
    config: PolicyConfig,
    *,
    env: gym.Env | Mapping[str, Any],
    gamma: float,
) -> Path:
    """Write ``policy`` to one file, atomically (an existing file is replaced only when done).

    The file records the env it was trained on (id and the options a policy depends on:
    window, features, action type and bounds, steps_per_action, eval_every, reward),
    the discount ``gamma`` and the package version. It holds tensors and plain values
    only, so it loads with ``weights_only=True``.
    """
    payload = {
        "format": FORMAT,
        "version": package_version(),
        "env": _signature(env),
        "gamma": float(gamma),
        "observation_space": _space_spec(policy.observation_space),
        "action_space": _space_spec(policy.action_space),
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()},
        "state_dict": {k: v.detach().cpu() for k, v in policy.state_dict().items()},
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    return atomic_write_bytes(path, buf.getvalue())


def read_policy_file(path: str | Path) -> PolicyFile:
    """Read a file written by :func:`save_policy` without building the network.

    Raises:
        ValueError: the file is not a policy file of this format, naming what it is.
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as e:
        raise ValueError(f"{path} is not a saved lrschedule-gym policy ({e})") from e
    fmt = payload.get("format") if isinstance(payload, dict) else None
    if fmt != FORMAT:
        hint = " (an older policy file: re-run train_bc.py)" if fmt else ""
        raise ValueError(
            f"{path} is not a saved lrschedule-gym policy of format {FORMAT}: found {fmt!r}{hint}"
        )
    return PolicyFile(
        config=PolicyConfig(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in payload["config"].items()}
        ),
        env=payload["env"],
        gamma=payload["gamma"],
        version=payload["version"],
        observation_space=_space_from_spec(payload["observation_space"]),
        action_space=_space_from_spec(payload["action_space"]),
        state_dict=payload["state_dict"],
    )


def check_env(
    stored: Mapping[str, Any],
    env: gym.Env | Mapping[str, Any],
    *,
    allow_mismatch: bool = False,
    source: str = "policy",
) -> list[str]:
    """Compare a policy's stored env signature with ``env``'s; return the mismatches.

    Raises:
        ValueError: the observation layout or action space differs (the network cannot
            run there), or any other checked option differs and ``allow_mismatch`` is
            False; the message names every mismatch.
    """
    current = _signature(env)
    structural = signature_mismatches(dict(stored), current, STRUCTURAL)
    if structural:
        raise ValueError(
            f"{source} cannot run in this env: "
            + "; ".join(structural)
            + " (the network takes another observation or action space)"
        )
    others = signature_mismatches(dict(stored), current)
    if others and not allow_mismatch:
        raise ValueError(
            f"{source} was trained on another env: "
            + "; ".join(others)
            + ". Pass allow_mismatch=True to use it there deliberately (transfer)."
        )
    return others


def load_policy(
    path: str | Path,
    env: gym.Env | Mapping[str, Any] | None = None,
    *,
    allow_mismatch: bool = False,
    device: str | torch.device = "auto",
) -> ActorCriticPolicy:
    """Load a policy written by :func:`save_policy`; needs only SB3 and this package.

    Args:
        path: the policy file.
        env: the env (or its signature) the policy will act in. When given, the file's
            stored env must match it: env id, trainee, window, features, action type,
            bounds and factors, steps_per_action, eval_every and reward.
        allow_mismatch: accept an env that differs in anything but the observation
            layout and action space (deliberate transfer); the differences are warned.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``...

    The caller's global RNG state is left untouched. The returned policy carries the
    file's contents (without the weights) as ``policy.lrgym_file``.

    Raises:
        ValueError: not a policy file, or a mismatched env (naming every mismatch).
    """
    saved = read_policy_file(path)
    if env is not None:
        for m in check_env(saved.env, env, allow_mismatch=allow_mismatch, source=str(path)):
            warnings.warn(f"{path}: transferred to another env: {m}", stacklevel=2)
    return build_policy(saved, device)


def build_policy(saved: PolicyFile, device: str | torch.device = "auto") -> ActorCriticPolicy:
    """The network of a policy's contents, in eval mode on ``device`` (``"auto"``: CUDA
    when available), carrying the contents without the weights as ``policy.lrgym_file``.

    Raises:
        RuntimeError: the weights do not fit the architecture (``load_state_dict``'s).
    """
    policy = make_policy(saved.observation_space, saved.action_space, saved.config)
    policy.load_state_dict(saved.state_dict)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    policy.set_training_mode(False)
    policy.lrgym_file = dataclasses.replace(saved, state_dict={})
    return policy.to(device)
