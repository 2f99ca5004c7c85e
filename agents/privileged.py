"""A critic that sees the task, an actor that does not: PPO across randomised tasks.

The tuning-free recipe's PPO stage trains on episodes whose base LR is drawn around the
env's reference (``EnvConfig.base_lr_spread``). Returns differ far more between tasks
than between actions, so a critic that must guess the task from the training signals
gives noisy advantages. Here the critic is told the task -- ``log(reference / base_lr)``
(how far the drawn LR is from right) and the trainee (one-hot over
``trainees.TRAINEES``) -- while the actor, the part that is deployed, never sees it:

- :class:`VecPrivileged` appends the task features to every observation row as extra
  columns (``PRIVILEGED_FEATURES``), and to ``terminal_observation`` with the features of
  the episode that ended;
- :class:`PrivilegedActorCritic` is SB3's ``ActorCriticPolicy`` whose actor extractor
  (:class:`ActorWindow`) drops those columns before anything else, so the actor's
  output has a zero gradient with respect to them (tested), and whose critic extractor
  (:class:`CriticWindow`) adds a linear function of them, zero at the start: the critic
  starts as the BC critic it is loaded from;
- :func:`deployable` is the plain policy on the env's own observation (the actor and
  the critic's window part, weights shared by name), which is what is evaluated, saved
  and run by ``LearnedLRScheduler``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from torch import nn

from agents.policy import PolicyConfig, make_policy
from agents.transformer import WindowTransformer
from trainees.factory import EXTRA_TRAINEES, TRAINEES

TASK_TRAINEES: tuple[str, ...] = TRAINEES + EXTRA_TRAINEES
PRIVILEGED_FEATURES: tuple[str, ...] = (
    "log_reference_over_base_lr",
    *(f"trainee_{t}" for t in TASK_TRAINEES),
)
N_PRIVILEGED = len(PRIVILEGED_FEATURES)
TASK_TERM = ("vf_features_extractor.task.weight", "vf_features_extractor.task.bias")


def task_features(base_lr: float, reference_lr: float, trainee: str) -> np.ndarray:
    """The privileged features of one episode (``PRIVILEGED_FEATURES``' order).

    Raises:
        ValueError: a non-positive LR or an unknown trainee, naming the valid ones.
    """
    if not (base_lr > 0 and reference_lr > 0):
        raise ValueError(f"base_lr={base_lr!r} and reference_lr={reference_lr!r} must be > 0")
    if trainee not in TASK_TRAINEES:
        raise ValueError(f"trainee {trainee!r} is invalid; valid: {', '.join(TASK_TRAINEES)}")
    onehot = [1.0 if t == trainee else 0.0 for t in TASK_TRAINEES]
    return np.array([math.log(reference_lr / base_lr), *onehot], np.float32)


def augmented_space(space: spaces.Box) -> spaces.Box:
    """The env's ``(window, n_features)`` Box with the privileged columns appended."""
    window = space.shape[0]
    low = np.concatenate([space.low, np.full((window, N_PRIVILEGED), -np.inf, np.float32)], 1)
    high = np.concatenate([space.high, np.full((window, N_PRIVILEGED), np.inf, np.float32)], 1)
    return spaces.Box(low, high, dtype=np.float32)


def _signals_space(space: spaces.Box) -> spaces.Box:
    """The augmented space without its privileged columns (the env's own)."""
    return spaces.Box(space.low[:, :-N_PRIVILEGED], space.high[:, :-N_PRIVILEGED], dtype=np.float32)


class VecPrivileged(VecEnvWrapper):
    """Appends each episode's task features to its observations (see the module docstring).

    The features are read from each env's current episode (``base_lr``, drawn at
    ``reset``, and its trainee's name) after every reset, automatic ones included.

    Args:
        venv: a vec env of ``LRScheduleEnv`` episodes (batched or not, any wrappers).
        reference_lr: the LR the expert runs at (the task's "right" LR); one per env
            when the envs are of several tasks (a ``MixedVecEnv``).
    """

    def __init__(self, venv: VecEnv, reference_lr: float | Sequence[float]) -> None:
        super().__init__(venv, observation_space=augmented_space(venv.observation_space))
        refs = np.broadcast_to(np.asarray(reference_lr, np.float64), (venv.num_envs,))
        if not np.all(refs > 0):
            raise ValueError(
                f"reference_lr={reference_lr!r} is invalid; expected one number "
                f"> 0, or {venv.num_envs} (one per env)"
            )
        self.reference_lrs = [float(r) for r in refs]
        self._features = np.zeros((venv.num_envs, N_PRIVILEGED), np.float32)

    def _read_features(self) -> np.ndarray:
        envs = self.venv.get_attr("unwrapped")
        return np.stack(
            [
                task_features(e.base_lr, ref, e.trainee_name)
                for e, ref in zip(envs, self.reference_lrs, strict=True)
            ]
        )

    def _augment(self, obs: np.ndarray, features: np.ndarray) -> np.ndarray:
        rows = np.broadcast_to(features[..., None, :], (*obs.shape[:-1], N_PRIVILEGED))
        return np.concatenate([obs, rows], axis=-1).astype(np.float32)

    def reset(self) -> np.ndarray:
        """Reset every env and augment the first observations."""
        obs = self.venv.reset()
        self._features = self._read_features()
        return self._augment(obs, self._features)

    def step_wait(self):
        """Step, augment ``terminal_observation`` with the ended episode's features."""
        obs, rewards, dones, infos = self.venv.step_wait()
        ended = self._features
        for k, info in enumerate(infos):
            if dones[k] and "terminal_observation" in info:
                info["terminal_observation"] = self._augment(info["terminal_observation"], ended[k])
        self._features = self._read_features() if dones.any() else ended
        return self._augment(obs, self._features), rewards, dones, infos


class ActorWindow(WindowTransformer):
    """:class:`WindowTransformer` over the env's own columns; the privileged ones are dropped.

    Its parameters have the names and shapes of a plain ``WindowTransformer``'s.
    """

    def __init__(self, observation_space: spaces.Box, features_dim: int = 64, **kwargs: Any):
        super().__init__(_signals_space(observation_space), features_dim, **kwargs)
        self._observation_space = observation_space
        self.n_signals = observation_space.shape[1] - N_PRIVILEGED

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return super().forward(observations[..., : self.n_signals])


class CriticWindow(ActorWindow):
    """:class:`ActorWindow`'s features plus a linear function of the task (zero at the start)."""

    def __init__(self, observation_space: spaces.Box, features_dim: int = 64, **kwargs: Any):
        super().__init__(observation_space, features_dim, **kwargs)
        self.task = nn.Linear(N_PRIVILEGED, features_dim)
        nn.init.zeros_(self.task.weight)
        nn.init.zeros_(self.task.bias)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        task = observations[:, -1, self.n_signals :]
        return super().forward(observations) + self.task(task)


class PrivilegedActorCritic(ActorCriticPolicy):
    """SB3's actor-critic over an augmented observation: the actor blind to the task.

    Build it with :func:`make_privileged_policy`; its ``policy_kwargs`` are
    ``PolicyConfig.policy_kwargs()`` with ``ActorWindow`` as the extractor class.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.vf_features_extractor = CriticWindow(
            self.observation_space, **self.features_extractor_kwargs
        )
        self.optimizer = self.optimizer_class(
            self.parameters(), lr=self._initial_lr, **self.optimizer_kwargs
        )

    def _build(self, lr_schedule: Schedule) -> None:
        self._initial_lr = lr_schedule(1)
        super()._build(lr_schedule)


def privileged_kwargs(config: PolicyConfig) -> dict[str, Any]:
    """``policy_kwargs`` of a :class:`PrivilegedActorCritic` with ``config``'s architecture."""
    return config.policy_kwargs() | {"features_extractor_class": ActorWindow}


def make_privileged_policy(
    env_space: spaces.Box,
    action_space: spaces.Space,
    config: PolicyConfig | None = None,
    *,
    state_dict: dict[str, torch.Tensor] | None = None,
    seed: int = 0,
) -> PrivilegedActorCritic:
    """A privileged actor-critic for an env's observation space ``env_space``.

    ``state_dict`` (a plain policy's, e.g. a BC or DAgger file's) is loaded into every
    parameter of the same name: the actor is that policy's, and the critic is its
    critic (the task term starts at zero).
    """
    config = config or PolicyConfig()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        policy = PrivilegedActorCritic(
            augmented_space(env_space), action_space, lambda _: 3e-4, **privileged_kwargs(config)
        )
    if state_dict is not None:
        load_plain_state(policy, state_dict)
    return policy


def load_plain_state(policy: PrivilegedActorCritic, state_dict: dict[str, torch.Tensor]) -> None:
    """Load a plain policy's state into every parameter of the same name (all but the task term).

    Raises:
        ValueError: ``state_dict`` is not a plain policy's of this architecture.
    """
    missing, unexpected = policy.load_state_dict(state_dict, strict=False)
    if unexpected or set(missing) != set(TASK_TERM):
        raise ValueError(f"not a plain policy's state: missing {missing}, unexpected {unexpected}")


def deployable(policy: ActorCriticPolicy, config: PolicyConfig) -> ActorCriticPolicy:
    """The plain policy on the env's own observation: the actor (and the critic's window part).

    A plain policy is returned as it is.
    """
    if not isinstance(policy, PrivilegedActorCritic):
        return policy
    plain = make_policy(_signals_space(policy.observation_space), policy.action_space, config)
    state = {k: v for k, v in policy.state_dict().items() if k not in TASK_TERM}
    plain.load_state_dict(state)
    return plain.to(policy.device)
