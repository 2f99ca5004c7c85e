"""A tabular Q-learning LR controller for LRScheduleEnv's discrete (factor) actions.

State: (validation loss, current LR), each discretised into configurable bins. Both are
read from the observation's newest row: ``log(val / loss0)`` and ``log(LR / base_lr)``,
so nearby losses share a state instead of each visit creating a new one. Actions are
the env's multiplicative factors, so the LR the agent chooses is the LR the optimizer
gets (the env sets it at every optimizer step). The table persists across episodes.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np

from common.files import atomic_write_bytes
from envs.observation import FEATURES
from envs.rollout import Episode, Transition, run_episode

LOG_VAL = FEATURES.index("log_val_loss")
LOG_LR = FEATURES.index("log_lr_multiplier")


@dataclass(frozen=True)
class QLearningConfig:
    """Hyperparameters of the Q-learning agent.

    Attributes:
        alpha: learning rate of the Q-update.
        gamma: discount factor.
        epsilon: initial exploration rate.
        epsilon_decay: multiplies epsilon after every action (1.0: no decay).
        epsilon_min: floor of the decayed epsilon.
        loss_edges: bin edges of log(val loss / initial val loss).
        lr_edges: bin edges of log(LR / base_lr).
    """

    alpha: float = 0.1
    gamma: float = 0.9
    epsilon: float = 0.1
    epsilon_decay: float = 1.0
    epsilon_min: float = 0.0
    loss_edges: tuple[float, ...] = field(
        default_factory=lambda: tuple(np.round(np.linspace(-2.0, 0.2, 12), 3).tolist())
    )
    lr_edges: tuple[float, ...] = field(
        default_factory=lambda: tuple(np.round(np.linspace(-2.3, 2.3, 24), 3).tolist())
    )

    def __post_init__(self) -> None:
        for name in ("alpha", "gamma", "epsilon", "epsilon_decay", "epsilon_min"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}={value!r} is invalid; expected a value in [0, 1]")
        for name in ("loss_edges", "lr_edges"):
            edges = np.asarray(getattr(self, name), dtype=np.float64)
            if edges.ndim != 1 or len(edges) < 1 or np.any(np.diff(edges) <= 0):
                raise ValueError(f"{name}={getattr(self, name)!r} must be strictly increasing")

    @property
    def table_shape(self) -> tuple[int, int]:
        """Number of (loss, LR) states: one bin more than edges in each dimension."""
        return len(self.loss_edges) + 1, len(self.lr_edges) + 1


class QLearningAgent:
    """Epsilon-greedy tabular Q-learning; ties are broken at random with its own generator."""

    def __init__(self, n_actions: int, config: QLearningConfig | None = None, seed: int = 0):
        if n_actions < 1:
            raise ValueError(f"n_actions={n_actions} must be >= 1")
        self.config = config or QLearningConfig()
        self.n_actions = n_actions
        self.q = np.zeros((*self.config.table_shape, n_actions))
        self.epsilon = self.config.epsilon
        self.rng = np.random.default_rng(seed)
        self._loss_edges = np.asarray(self.config.loss_edges)
        self._lr_edges = np.asarray(self.config.lr_edges)

    def state(self, obs: np.ndarray) -> tuple[int, int]:
        """The (loss bin, LR bin) of an observation's newest row (observation v0).

        Raises:
            ValueError: the observation is not v0's (its bins are of v0's log val loss).
        """
        if obs.shape[-1] != len(FEATURES):
            raise ValueError(
                f"Q-learning bins observation v0's log val loss; got rows of {obs.shape[-1]} "
                f"features, v0 has {len(FEATURES)}: use an env with observation='v0'"
            )
        row = obs[-1]
        return self.bin_state(float(row[LOG_VAL]), float(row[LOG_LR]))

    def bin_state(self, log_val: float, log_lr: float) -> tuple[int, int]:
        """Bins of ``log(val / loss0)`` and ``log(LR / base_lr)``."""
        return (
            int(np.searchsorted(self._loss_edges, log_val, side="right")),
            int(np.searchsorted(self._lr_edges, log_lr, side="right")),
        )

    def greedy(self, state: tuple[int, int]) -> int:
        """An action of maximal value, ties broken at random."""
        values = self.q[state]
        best = np.flatnonzero(values == values.max())
        return int(best[0] if len(best) == 1 else self.rng.choice(best))

    def act(self, state: tuple[int, int], *, explore: bool = True) -> int:
        """Epsilon-greedy action (greedy when ``explore`` is False)."""
        if explore and self.rng.random() < self.epsilon:
            return int(self.rng.integers(self.n_actions))
        return self.greedy(state)

    def update(
        self,
        state: tuple[int, int],
        action: int,
        reward: float,
        next_state: tuple[int, int],
        terminal: bool,
    ) -> float:
        """``Q <- Q + alpha (r + gamma max Q(s') - Q)``; returns the TD error."""
        if not math.isfinite(reward):
            raise ValueError(f"reward={reward!r} is not finite")
        target = reward + (0.0 if terminal else self.config.gamma * self.q[next_state].max())
        td = target - self.q[state][action]
        self.q[state][action] += self.config.alpha * td
        self.epsilon = max(self.config.epsilon_min, self.epsilon * self.config.epsilon_decay)
        return float(td)

    def learn(self, t: Transition) -> float:
        """The Q-update for one env transition (``on_step`` of the rollout loop)."""
        action = int(np.asarray(t.action).reshape(-1)[0])
        return self.update(
            self.state(t.obs), action, t.reward, self.state(t.next_obs), t.terminated
        )

    def predict(
        self,
        observation: np.ndarray,
        state: object = None,
        episode_start: object = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, None]:
        """SB3-style ``predict`` (greedy when deterministic) for evaluation rollouts."""
        return np.asarray(self.act(self.state(observation), explore=not deterministic)), None

    def save(self, path: str | Path) -> Path:
        """Write the table, epsilon and config to one ``.npz`` file, atomically."""
        path = Path(path)
        buf = io.BytesIO()
        config = json.dumps(asdict(self.config))
        np.savez(buf, q=self.q, epsilon=self.epsilon, config=np.array(config))
        atomic_write_bytes(path, buf.getvalue())
        return path

    @classmethod
    def load(cls, path: str | Path, seed: int = 0) -> QLearningAgent:
        """An agent with the table, epsilon and config saved by :meth:`save`."""
        with np.load(path, allow_pickle=False) as z:
            raw = json.loads(str(z["config"]))
            config = QLearningConfig(
                **{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
            )
            agent = cls(z["q"].shape[-1], config, seed)
            if z["q"].shape != agent.q.shape:
                raise ValueError(f"{path}: table shape {z['q'].shape} does not match its config")
            agent.q = z["q"].copy()
            agent.epsilon = float(z["epsilon"])
        return agent


def learn_episode(env: gym.Env, agent: QLearningAgent, seed: int) -> Episode:
    """One training run with online Q-learning: the shared rollout loop, exploring."""
    return run_episode(env, agent, seed, deterministic=False, on_step=agent.learn)
