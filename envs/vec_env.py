"""K episodes whose training runs step together: a stable-baselines3 ``VecEnv``.

:class:`BatchedVecEnv` serves K :class:`~envs.lrschedule_env.LRScheduleEnv` episodes
over one :class:`~trainees.batched.trainee.BatchedTrainee`: each ``step`` applies the K actions,
then runs the K models' optimizer steps as one vectorised step each, and evaluates the
models that are due together. Each env's observations, rewards and infos are those of
a single ``LRScheduleEnv`` given the same seed and actions (only float reassociation
differs); episodes end and reset per env, with SB3's ``terminal_observation`` in the
infos. SB3 algorithms and ``imitation`` use it as any ``VecEnv``.

``make_batched_vec_env(env_id, n_envs)`` builds it for a registered id, and falls back
to SB3's ``DummyVecEnv`` of single envs, with a warning, for a trainee that has no
batched form. Given ``episode_seeds`` (a block of seeds, e.g. one run's RL training
seeds), every episode of either vec env, the first ones and every automatic reset,
starts from its own seed of that block (:class:`EpisodeSeeds`), so the episodes an
agent trains on are known, reproducible and disjoint from every other seed range.
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

from envs.config import ENV_OPTIONS
from envs.lrschedule_env import LRScheduleEnv
from trainees.batched.trainee import (
    BATCHED_OPTIMIZERS,
    BATCHED_TRAINEES,
    BatchedTrainee,
    make_batched_trainee,
)


class EpisodeSeeds:
    """The seeds of the episodes of ``n_envs`` envs, taken in turn from one block.

    Env ``k``'s ``j``-th episode starts from ``block[j * n_envs + k]``: no seed is used
    twice, and every one lies in ``block``. :meth:`state_dict` is the number of episodes
    each env has started, so a resumed job continues the sequence (fresh episodes).

    Args:
        block: the seeds to draw from (e.g. ``common.seeds.rl_training_block(seed)``).
        n_envs: the envs that share the block.
    """

    def __init__(self, block: range, n_envs: int) -> None:
        if n_envs < 1:
            raise ValueError(f"n_envs={n_envs!r} is invalid; expected an integer >= 1")
        self.block = block
        self.n_envs = n_envs
        self.started = [0] * n_envs
        self.used: list[int] = []  # every seed handed out, in order

    def next(self, k: int) -> int:
        """The seed of env ``k``'s next episode.

        Raises:
            RuntimeError: the block is spent (more episodes than ``len(block) / n_envs``).
        """
        i = self.started[k] * self.n_envs + k
        if i >= len(self.block):
            raise RuntimeError(
                f"env {k} needs a seed for its episode {self.started[k]}, but the block "
                f"{self.block.start}..{self.block.stop - 1} is spent ({len(self.block)} seeds "
                f"for {self.n_envs} envs)"
            )
        self.started[k] += 1
        self.used.append(self.block[i])
        return self.block[i]

    def state_dict(self) -> dict[str, Any]:
        """The block and the episodes started per env, as plain values."""
        block = [self.block.start, self.block.stop]
        return {"block": block, "n_envs": self.n_envs, "started": list(self.started)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`; the block and ``n_envs`` must be the same.

        Raises:
            ValueError: another block or number of envs, naming both.
        """
        mine = self.state_dict()
        for key in ("block", "n_envs"):
            if state[key] != mine[key]:
                raise ValueError(
                    f"episode seeds: stored {key} {state[key]}, this job's {mine[key]}"
                )
        self.started = [int(n) for n in state["started"]]


class SeededEpisodes(gym.Wrapper):
    """Starts every episode of env ``k`` that is reset without a seed from ``seeds.next(k)``.

    An explicit ``reset(seed=...)`` is passed through unchanged. The seed of the
    episode is in the reset ``info`` as ``"episode_seed"``.
    """

    def __init__(self, env: gym.Env, seeds: EpisodeSeeds, k: int) -> None:
        super().__init__(env)
        self.seeds, self.k = seeds, k

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset the env from ``seed``, or from the next seed of the block."""
        if seed is None:
            seed = self.seeds.next(self.k)
        obs, info = self.env.reset(seed=seed, options=options)
        return obs, info | {"episode_seed": seed}


class BatchedVecEnv(DummyVecEnv):
    """K ``LRScheduleEnv`` episodes over one batched trainee, stepped in lockstep.

    Args:
        trainee: the K training runs (env ``k`` trains model ``k``).
        env_id: the registered id the envs stand for (recorded in their signatures).
        render_mode: as ``LRScheduleEnv``'s; ``render()`` tiles the K images.
        episode_seeds: start every episode (first and automatic resets) from the next
            seed of this block (see :class:`EpisodeSeeds`); None: SB3's seeding.
        **env_options: ``EnvConfig`` options of every env.
    """

    def __init__(
        self,
        trainee: BatchedTrainee,
        env_id: str | None = None,
        render_mode: str | None = None,
        episode_seeds: EpisodeSeeds | None = None,
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
        self.lockstep = envs  # the envs whose step phases run here, in lockstep
        self.episode_seeds = episode_seeds
        if episode_seeds is not None:
            envs = [SeededEpisodes(env, episode_seeds, k) for k, env in enumerate(envs)]
        super().__init__([lambda env=env: env for env in envs])
        self.trainee = trainee

    def step_wait(self) -> VecEnvStepReturn:
        """Apply the actions, train the K models together, then end each env's step."""
        envs, n = self.lockstep, self.num_envs
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
                obs, self.reset_infos[k] = self.envs[k].reset()
            self._save_obs(k, obs)
        return (
            self._obs_from_buf(),
            np.copy(self.buf_rews),
            np.copy(self.buf_dones),
            deepcopy(self.buf_infos),
        )


def make_batched_vec_env(
    env_id: str,
    n_envs: int,
    seed: int = 0,
    *,
    episode_seeds: range | None = None,
    **env_options: Any,
) -> VecEnv:
    """``n_envs`` episodes of ``env_id`` in lockstep, as an SB3 ``VecEnv`` (with ``VecMonitor``).

    Without ``episode_seeds``, env ``k`` is seeded with ``seed + k`` at the first
    ``reset()``, as SB3's ``make_vec_env`` seeds it, and later episodes continue its RNG.
    With ``episode_seeds`` (``seed`` is then unused), every episode, first and automatic
    resets alike, starts from its own seed of that block (:class:`EpisodeSeeds`, the
    vec env's ``episode_seeds`` attribute). ``env_options`` are ``gym.make`` options
    (env and trainee).
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
    schedule = EpisodeSeeds(episode_seeds, n_envs) if episode_seeds is not None else None
    if why is not None:
        warnings.warn(f"{why}; using a DummyVecEnv of {n_envs} single envs", stacklevel=2)
        vec = make_vec_env(env_id, n_envs, seed=seed, env_kwargs=env_options)
        if schedule is not None:  # the schedule, not seed + k, seeds the first episodes too
            vec._reset_seeds()
            vec.envs = [SeededEpisodes(env, schedule, k) for k, env in enumerate(vec.envs)]
        vec.episode_seeds = schedule
        return vec
    render_mode = kwargs.pop("render_mode", None)
    env_kwargs = {k: v for k, v in kwargs.items() if k in ENV_OPTIONS}
    trainee_kwargs = {k: v for k, v in kwargs.items() if k not in ENV_OPTIONS}
    LRScheduleEnv._check_options(trainee, trainee_kwargs)
    batched = make_batched_trainee(trainee, n_envs, **trainee_kwargs)
    vec = BatchedVecEnv(batched, env_id, render_mode, schedule, **env_kwargs)
    if schedule is None:
        vec.seed(seed)
    return VecMonitor(vec)
