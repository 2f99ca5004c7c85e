"""The one rollout loop: a policy acting in an env for one whole episode.

Demonstrations, evaluation runs, online Q-learning and the env benchmark all go
through :func:`run_episode`; a learning agent gets each transition through
``on_step``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from tqdm import tqdm


class Policy(Protocol):
    """Anything with stable-baselines3's ``predict``."""

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]: ...


@dataclass(frozen=True)
class Transition:
    """One env step as a learning agent sees it."""

    obs: np.ndarray
    action: Any
    reward: float
    next_obs: np.ndarray
    terminated: bool
    truncated: bool
    info: dict[str, Any]


@dataclass
class Episode:
    """One rollout: the trajectory and the training curve it produced.

    Attributes:
        seed: the env seed.
        observations: ``n + 1`` observations, the reset one first.
        actions: the ``n`` actions taken.
        rewards: the ``n`` rewards.
        infos: the ``n`` step infos (the last one holds the final metrics).
        policy_seconds: wall time spent choosing actions.
        seconds: wall time of the whole episode, reset included.
    """

    seed: int
    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    infos: list[dict[str, Any]]
    policy_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def lrs(self) -> np.ndarray:
        """LR applied by each action."""
        return np.array([i["lr"] for i in self.infos])

    @property
    def base_lr(self) -> float | None:
        """The episode's base LR (drawn at reset under task randomisation)."""
        return self.infos[0].get("base_lr") if self.infos else None

    @property
    def steps(self) -> np.ndarray:
        """Optimizer steps done after each action."""
        return np.array([i["step"] for i in self.infos])

    @property
    def val_losses(self) -> np.ndarray:
        """Validation loss in force after each action."""
        return np.array([i["val_loss"] for i in self.infos])

    @property
    def final(self) -> dict[str, Any]:
        """The last step's ``info``: best_val_loss, final_train_loss, total_train_time ..."""
        return self.infos[-1]

    @property
    def best_val_loss(self) -> float:
        """Best validation loss of the run."""
        return float(self.final["best_val_loss"])

    @property
    def episode_return(self) -> float:
        """Undiscounted sum of the rewards."""
        return float(np.sum(self.rewards))

    @property
    def diverged(self) -> bool:
        """Whether training diverged (the episode ended early with the penalty)."""
        return bool(self.final.get("diverged", False))


def run_episode(
    env: gym.Env,
    policy: Policy,
    seed: int,
    *,
    deterministic: bool = True,
    on_step: Callable[[Transition], None] | None = None,
) -> Episode:
    """Roll ``policy`` through one whole episode of ``env`` reset with ``seed``.

    Args:
        env: the environment (any Gymnasium env).
        policy: chooses actions through ``predict(obs, deterministic=...)``.
        seed: passed to ``env.reset``.
        deterministic: passed to ``predict``; False lets a stochastic policy explore.
        on_step: called after every step with the transition (online learning).
    """
    t_start = time.perf_counter()
    obs, _ = env.reset(seed=seed)
    observations, actions, rewards, infos = [obs], [], [], []
    policy_seconds, done = 0.0, False
    while not done:
        t0 = time.perf_counter()
        action, _ = policy.predict(obs, deterministic=deterministic)
        policy_seconds += time.perf_counter() - t0
        next_obs, reward, terminated, truncated, info = env.step(action)
        if on_step is not None:
            on_step(Transition(obs, action, float(reward), next_obs, terminated, truncated, info))
        observations.append(next_obs)
        actions.append(action)
        rewards.append(reward)
        infos.append(info)
        obs, done = next_obs, terminated or truncated
    return Episode(
        seed=seed,
        observations=np.stack(observations),
        actions=np.stack([np.asarray(a) for a in actions]),
        rewards=np.asarray(rewards, dtype=np.float64),
        infos=infos,
        policy_seconds=policy_seconds,
        seconds=time.perf_counter() - t_start,
    )


def run_episodes(
    env: gym.Env,
    policy: Policy,
    seeds: Sequence[int],
    *,
    deterministic: bool = True,
    desc: str | None = None,
    progress: bool = False,
) -> list[Episode]:
    """:func:`run_episode` on each of ``seeds``, with an optional tqdm progress bar."""
    return [
        run_episode(env, policy, s, deterministic=deterministic)
        for s in tqdm(seeds, desc=desc, disable=not progress)
    ]
