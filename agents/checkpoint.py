"""PPO checkpoints: model, optimizer, counters and every RNG state in one atomically written file."""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.ppo import FinetunedPPO
from common.files import atomic_write_bytes

# -- checkpoints -------------------------------------------------------------------------
CHECKPOINT = "checkpoint.pt"


def _rng_state() -> dict[str, Any]:
    """The global RNG states SB3 draws from, as tensors and plain values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)],
        "python": [version, list(internal), gauss_next],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def save_checkpoint(model: FinetunedPPO, path: Path, extra: dict[str, Any]) -> Path:
    """Policy, optimizer, counters, RNG states and ``extra`` in one file, written atomically."""
    payload = {
        "policy": model.policy.state_dict(),
        "optimizer": model.policy.optimizer.state_dict(),
        "num_timesteps": model.num_timesteps,
        "rollouts_done": model.rollouts_done,
        "n_updates": model._n_updates,
        "rng": _rng_state(),
        "train_log": model.train_log,
        "extra": extra,
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(model: FinetunedPPO, path: Path) -> dict[str, Any]:
    """Restore a checkpoint written by :func:`save_checkpoint`; returns its ``extra``."""
    payload = torch.load(path, map_location=model.device, weights_only=True)
    model.policy.load_state_dict(payload["policy"])
    model.policy.optimizer.load_state_dict(payload["optimizer"])
    model.num_timesteps = int(payload["num_timesteps"])
    model.rollouts_done = int(payload["rollouts_done"])
    model._n_updates = int(payload["n_updates"])
    model.train_log = list(payload["train_log"])
    _set_rng_state(payload["rng"])
    return payload["extra"]
