"""The transformer actor-critic policy, and saving it as one self-describing file."""

from __future__ import annotations

import io
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy

from agents.transformer import WindowTransformer
from trainees.data.resolve import atomic_write_bytes

FORMAT = "lrschedule-gym-policy/1"


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
                features_dim=self.features_dim, patch_size=self.patch_size,
                d_model=self.d_model, n_layers=self.n_layers, n_heads=self.n_heads,
            ),
            share_features_extractor=False,
            net_arch=dict(pi=list(self.pi_hidden), vf=list(self.vf_hidden)),
            log_std_init=self.log_std_init,
        )  # fmt: skip


def _constant_lr(_: float) -> float:
    return 3e-4  # the policy's own optimizer is replaced by BC's and PPO's


def make_policy(
    observation_space: spaces.Box, action_space: spaces.Space, config: PolicyConfig | None = None
) -> ActorCriticPolicy:
    """A fresh transformer actor-critic for the given spaces."""
    config = config or PolicyConfig()
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


def save_policy(policy: ActorCriticPolicy, path: str | Path, config: PolicyConfig) -> Path:
    """Write ``policy`` to one file, atomically (an existing file is replaced only when done).

    The file holds tensors and plain values only, so it loads with ``weights_only=True``.
    """
    path = Path(path)
    payload = {
        "format": FORMAT,
        "observation_space": _space_spec(policy.observation_space),
        "action_space": _space_spec(policy.action_space),
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()},
        "state_dict": {k: v.detach().cpu() for k, v in policy.state_dict().items()},
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())
    return path


def load_policy(path: str | Path, device: str | torch.device = "auto") -> ActorCriticPolicy:
    """Load a policy written by :func:`save_policy`; needs only SB3 and this package."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as e:
        raise ValueError(f"{path} is not a saved lrschedule-gym policy ({e})") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a saved lrschedule-gym policy (format {FORMAT})")
    config = PolicyConfig(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in payload["config"].items()}
    )
    policy = make_policy(
        _space_from_spec(payload["observation_space"]),
        _space_from_spec(payload["action_space"]),
        config,
    )
    policy.load_state_dict(payload["state_dict"])
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    policy.set_training_mode(False)
    return policy.to(device)
