"""Demonstrations: real env rollouts of a policy, saved to disk with the expert's name.

A demonstration folder holds ``trajectories.npz`` (observations, actions, rewards and
episode lengths), ``infos.json`` and ``meta.json`` naming the expert, its parameters,
the env and the seeds, so BC can be re-run without re-training trainees. They load
back as imitation's ``TrajectoryWithRew``. (imitation's own ``serialize`` goes through
Hugging Face ``datasets``/``pyarrow``, whose current releases need NumPy 2, which
gymnasium 0.29 does not support.)
"""

from __future__ import annotations

import dataclasses
import io
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from imitation.data.types import TrajectoryWithRew

from experts.schedules import Schedule
from trainees.data.resolve import atomic_write_bytes


class Policy(Protocol):
    """Anything with SB3's ``predict``."""

    def predict(
        self, observation: np.ndarray, state: Any = None, episode_start: Any = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]: ...  # fmt: skip


@dataclass
class Episode:
    """One rollout: the trajectory and the training curve it produced.

    Attributes:
        seed: the env seed.
        trajectory: observations, actions, rewards and infos, as imitation stores them.
        lrs: LR applied by each action.
        steps: optimizer steps done after each action.
        val_losses: validation loss in force after each action.
        final: the final ``info`` (best_val_loss, final_train_loss, total_train_time ...).
        policy_seconds: wall time spent choosing actions.
    """

    seed: int
    trajectory: TrajectoryWithRew
    lrs: np.ndarray
    steps: np.ndarray
    val_losses: np.ndarray
    final: dict[str, Any] = field(default_factory=dict)
    policy_seconds: float = 0.0

    @property
    def best_val_loss(self) -> float:
        """Best validation loss of the run."""
        return float(self.final["best_val_loss"])


def run_episode(env: gym.Env, policy: Policy, seed: int) -> Episode:
    """Roll ``policy`` (deterministically) through one whole episode of ``env``."""
    obs, _ = env.reset(seed=seed)
    observations, actions, rewards, infos = [obs], [], [], []
    policy_seconds, done = 0.0, False
    while not done:
        t0 = time.perf_counter()
        action, _ = policy.predict(obs, deterministic=True)
        policy_seconds += time.perf_counter() - t0
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        actions.append(action)
        rewards.append(reward)
        infos.append(info)
        done = terminated or truncated
    trajectory = TrajectoryWithRew(
        obs=np.stack(observations),
        acts=np.stack(actions),
        infos=np.array(infos),
        terminal=True,
        rews=np.asarray(rewards, dtype=np.float32),
    )
    return Episode(
        seed=seed,
        trajectory=trajectory,
        lrs=np.array([i["lr"] for i in infos]),
        steps=np.array([i["step"] for i in infos]),
        val_losses=np.array([i["val_loss"] for i in infos]),
        final=infos[-1],
        policy_seconds=policy_seconds,
    )


def save_demonstrations(
    folder: str | Path,
    episodes: Sequence[Episode],
    *,
    expert: Schedule,
    env_id: str,
    env_kwargs: dict[str, Any],
) -> Path:
    """Write the episodes' trajectories and ``meta.json`` into ``folder``."""
    folder = Path(folder)
    trajs = [e.trajectory for e in episodes]
    arrays = io.BytesIO()
    np.savez_compressed(
        arrays,
        obs=np.concatenate([t.obs for t in trajs]),
        acts=np.concatenate([t.acts for t in trajs]),
        rews=np.concatenate([t.rews for t in trajs]),
        lengths=np.array([len(t.acts) for t in trajs]),
    )
    meta = {
        "expert": expert.name,
        "expert_params": dataclasses.asdict(expert),
        "env_id": env_id,
        "env_kwargs": env_kwargs,
        "seeds": [e.seed for e in episodes],
        "best_val_losses": [e.best_val_loss for e in episodes],
    }
    infos = [[_plain(i) for i in t.infos] for t in trajs]
    atomic_write_bytes(folder / "trajectories.npz", arrays.getvalue())
    atomic_write_bytes(folder / "infos.json", json.dumps(infos).encode())
    atomic_write_bytes(folder / "meta.json", json.dumps(meta, indent=2).encode())  # last: complete
    return folder


def _plain(info: dict[str, Any]) -> dict[str, Any]:
    """An info dict with numpy scalars turned into Python numbers (for JSON)."""
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in info.items()}


def load_demonstrations(folder: str | Path) -> tuple[list[TrajectoryWithRew], dict[str, Any]]:
    """The trajectories and metadata saved by :func:`save_demonstrations`."""
    folder = Path(folder)
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{folder} holds no demonstrations (no meta.json)")
    with np.load(folder / "trajectories.npz") as z:
        obs, acts, rews, lengths = z["obs"], z["acts"], z["rews"], z["lengths"]
    infos = json.loads((folder / "infos.json").read_text())
    trajectories, o, a = [], 0, 0
    for n, info in zip(lengths.tolist(), infos, strict=True):
        trajectories.append(
            TrajectoryWithRew(
                obs=obs[o : o + n + 1], acts=acts[a : a + n], infos=np.array(info),
                terminal=True, rews=rews[a : a + n],
            )
        )  # fmt: skip
        o, a = o + n + 1, a + n
    return trajectories, json.loads(meta_path.read_text())
