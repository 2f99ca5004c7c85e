"""K episodes whose training runs step together: a stable-baselines3 ``VecEnv``.

:class:`BatchedVecEnv` serves K :class:`~envs.lrschedule_env.LRScheduleEnv` episodes
over one :class:`~trainees.batched.BatchedTrainee`: each ``step`` applies the K actions,
then runs the K models' optimizer steps as one vectorised step each, and evaluates the
models that are due together. Each env's observations, rewards and infos are those of
a single ``LRScheduleEnv`` given the same seed and actions (only float reassociation
differs); episodes end and reset per env, with SB3's ``terminal_observation`` in the
infos. SB3 algorithms and ``imitation`` use it as any ``VecEnv``.

``make_batched_vec_env(env_id, n_envs)`` builds it for a registered id, and falls back
to SB3's ``DummyVecEnv`` of single envs, with a warning, for a trainee that has no
batched form.
"""

from __future__ import annotations

import time
import warnings
from copy import deepcopy
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecMonitor
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from envs.lrschedule_env import ENV_OPTIONS, LRScheduleEnv
from trainees.batched import (
    BATCHED_OPTIMIZERS,
    BATCHED_TRAINEES,
    BatchedTrainee,
    make_batched_trainee,
)


class BatchedVecEnv(DummyVecEnv):
    """K ``LRScheduleEnv`` episodes over one batched trainee, stepped in lockstep.

    Args:
        trainee: the K training runs (env ``k`` trains model ``k``).
        env_id: the registered id the envs stand for (recorded in their signatures).
        render_mode: as ``LRScheduleEnv``'s; ``render()`` tiles the K images.
        **env_options: ``EnvConfig`` options of every env.
    """

    envs: list[LRScheduleEnv]  # type: ignore[assignment]

    def __init__(
        self,
        trainee: BatchedTrainee,
        env_id: str | None = None,
        render_mode: str | None = None,
        **env_options: Any,
    ) -> None:
        unknown = sorted(set(env_options) - ENV_OPTIONS)
        if unknown:
            raise ValueError(
                f"unknown env option(s) {unknown}; valid: {sorted(ENV_OPTIONS)} (trainee "
                "options belong to the batched trainee)"
            )
        spec = gym.spec(env_id) if env_id is not None else None
        envs = []
        for k in range(trainee.n):
            env = LRScheduleEnv(trainee.slot(k), render_mode=render_mode, **env_options)
            env.spec = spec
            envs.append(env)
        super().__init__([lambda env=env: env for env in envs])
        self.trainee = trainee

    def step_wait(self) -> VecEnvStepReturn:
        """Apply the actions, train the K models together, then end each env's step."""
        envs, n = self.envs, self.num_envs
        lrs = np.array([env._begin_step(self.actions[k]) for k, env in enumerate(envs)])
        todo = np.array([env._action_steps for env in envs])
        t0 = time.perf_counter()
        for i in range(int(todo.max())):
            active = np.array([i < todo[k] and not envs[k]._diverged for k in range(n)])
            if not active.any():
                break
            stats = self.trainee.train_step(lrs, active)
            due = [k for k in np.flatnonzero(active) if envs[k]._record_step(stats[k])]
            if due:
                for k, val_loss in zip(due, self.trainee.evaluate(due), strict=True):
                    envs[k]._record_eval(float(val_loss))
        seconds = time.perf_counter() - t0
        for k, env in enumerate(envs):  # SB3's bookkeeping, as DummyVecEnv.step_wait does it
            obs, self.buf_rews[k], terminated, truncated, self.buf_infos[k] = env._end_step(seconds)
            self.buf_dones[k] = terminated or truncated
            self.buf_infos[k]["TimeLimit.truncated"] = truncated and not terminated
            if self.buf_dones[k]:
                self.buf_infos[k]["terminal_observation"] = obs
                obs, self.reset_infos[k] = env.reset()
            self._save_obs(k, obs)
        return (
            self._obs_from_buf(),
            np.copy(self.buf_rews),
            np.copy(self.buf_dones),
            deepcopy(self.buf_infos),
        )


def make_batched_vec_env(env_id: str, n_envs: int, seed: int = 0, **env_options: Any) -> VecEnv:
    """``n_envs`` episodes of ``env_id`` in lockstep, as an SB3 ``VecEnv`` (with ``VecMonitor``).

    Env ``k`` is seeded with ``seed + k`` at the first ``reset()``, as SB3's
    ``make_vec_env`` seeds it. ``env_options`` are ``gym.make`` options (env and trainee).
    A trainee without a batched form (ResNet-18, GPT), or an ``optimizer`` option other
    than AdamW, gets SB3's ``DummyVecEnv`` of single envs instead, with a warning.

    Raises:
        ValueError: ``n_envs < 1`` or an invalid option, naming the valid ones.
    """
    if n_envs < 1:
        raise ValueError(f"n_envs={n_envs!r} is invalid; expected an integer >= 1")
    kwargs = dict(gym.spec(env_id).kwargs) | env_options
    trainee = kwargs.pop("trainee", "mlp")
    optimizer = kwargs.get("optimizer", "adamw")
    if not (isinstance(trainee, str) and trainee in BATCHED_TRAINEES):
        name = trainee if isinstance(trainee, str) else type(trainee).__name__
        valid = ", ".join(BATCHED_TRAINEES)
        why = f"trainee {name!r} of {env_id} has no batched form (batched: {valid})"
    elif optimizer not in BATCHED_OPTIMIZERS:
        valid = ", ".join(BATCHED_OPTIMIZERS)
        why = f"optimizer {optimizer!r} has no batched form (batched: {valid})"
    else:
        why = None
    if why is not None:
        warnings.warn(f"{why}; using a DummyVecEnv of {n_envs} single envs", stacklevel=2)
        return make_vec_env(env_id, n_envs, seed=seed, env_kwargs=env_options)
    render_mode = kwargs.pop("render_mode", None)
    env_kwargs = {k: v for k, v in kwargs.items() if k in ENV_OPTIONS}
    trainee_kwargs = {k: v for k, v in kwargs.items() if k not in ENV_OPTIONS}
    LRScheduleEnv._check_options(trainee, trainee_kwargs)
    batched = make_batched_trainee(trainee, n_envs, **trainee_kwargs)
    vec = BatchedVecEnv(batched, env_id, render_mode=render_mode, **env_kwargs)
    vec.seed(seed)
    return VecMonitor(vec)
