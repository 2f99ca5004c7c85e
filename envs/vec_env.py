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
        if env_options.get("observation", "v0") != "v0":
            raise ValueError(
                f"observation={env_options['observation']!r}: batched envs compute observation "
                "v0 only (the batched trainee does not report update moments yet); run a "
                "-v1 env unbatched (gymnasium or SB3's make_vec_env)"
            )
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
    A trainee without a batched form (ResNet-18, GPT, an MLP with LayerNorm), an
    ``optimizer`` option other than AdamW, or observation ``v1`` gets SB3's
    ``DummyVecEnv`` of single envs instead, with a warning.

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
    elif kwargs.get("norm", "none") != "none":
        why = f"an MLP with norm={kwargs['norm']!r} has no batched form (LayerNorm)"
    elif kwargs.get("observation", "v0") != "v0":
        why = (
            f"observation={kwargs['observation']!r} needs update moments, which the batched "
            "trainee does not report yet"
        )
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


class MixedEpisodeSeeds:
    """The :class:`EpisodeSeeds` of a :class:`MixedVecEnv`'s parts, saved and restored as one."""

    def __init__(self, parts: list[EpisodeSeeds]) -> None:
        self.parts = parts

    @property
    def used(self) -> list[int]:
        """Every seed handed out, part by part."""
        return [s for part in self.parts for s in part.used]

    def state_dict(self) -> dict[str, Any]:
        """Each part's state, in order."""
        return {"parts": [part.state_dict() for part in self.parts]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`; the parts must be the same.

        Raises:
            ValueError: another number of parts, or a part of another block.
        """
        if len(state.get("parts", [])) != len(self.parts):
            raise ValueError(
                f"episode seeds: stored {len(state.get('parts', []))} parts, this "
                f"job's {len(self.parts)}"
            )
        for part, stored in zip(self.parts, state["parts"], strict=True):
            part.load_state_dict(stored)


def space_summary(space: gym.Space) -> str:
    """A space in a line: a Box's shape and dtype (its bounds can fill a screen)."""
    if isinstance(space, gym.spaces.Box):
        return f"Box(shape={space.shape}, dtype={space.dtype})"
    return repr(space)


def check_same_spaces(first: Any, other: Any, first_name: str, other_name: str) -> None:
    """Refuse ``other`` (an env or vec env) unless its observation and action spaces equal
    ``first``'s: one policy acts in both.

    Raises:
        ValueError: naming both and the spaces that differ.
    """
    for what in ("observation_space", "action_space"):
        if getattr(other, what) != getattr(first, what):
            raise ValueError(
                f"{other_name} has {what} {space_summary(getattr(other, what))}; {first_name} "
                f"has {space_summary(getattr(first, what))}: one policy cannot act in both"
            )


class MixedVecEnv(VecEnv):
    """Several vec envs of different trainees (or datasets, budgets) as one SB3 ``VecEnv``.

    Env ``k`` of the whole is env ``k - offset`` of the part that holds it, parts in the
    order given; each part steps as it would alone (a :class:`BatchedVecEnv` trains its
    models together), one part after another. Every part must have the same observation
    and action spaces, so that one policy acts in all of them.

    Args:
        parts: the vec envs, e.g. from :func:`make_mixed_vec_env`.

    Raises:
        ValueError: no parts, or a part whose spaces differ from the first's (named).
    """

    def __init__(self, parts: list[VecEnv]) -> None:
        if not parts:
            raise ValueError("MixedVecEnv needs at least one vec env")
        first = parts[0]
        for i, part in enumerate(parts[1:], 1):
            check_same_spaces(first, part, "part 0", f"part {i}")
        self.parts = parts
        self.bounds = np.cumsum([0] + [p.num_envs for p in parts])
        super().__init__(int(self.bounds[-1]), first.observation_space, first.action_space)

    def _split(self, indices: Any) -> list[tuple[VecEnv, list[int]]]:
        wanted = (
            range(self.num_envs)
            if indices is None
            else ([indices] if isinstance(indices, int) else list(indices))
        )
        out: list[tuple[VecEnv, list[int]]] = []
        for i, part in enumerate(self.parts):
            local = [
                k - int(self.bounds[i]) for k in wanted if self.bounds[i] <= k < self.bounds[i + 1]
            ]
            if local:
                out.append((part, local))
        return out

    def reset(self) -> np.ndarray:
        """Reset every part; the observations of all envs, in order."""
        obs = [part.reset() for part in self.parts]
        self.reset_infos = [info for part in self.parts for info in part.unwrapped.reset_infos]
        return np.concatenate(obs)

    def step_async(self, actions: np.ndarray) -> None:
        """Hand each part its envs' actions."""
        for i, part in enumerate(self.parts):
            part.step_async(actions[self.bounds[i] : self.bounds[i + 1]])

    def step_wait(self) -> VecEnvStepReturn:
        """Step each part in turn; observations, rewards, dones and infos of all envs."""
        results = [part.step_wait() for part in self.parts]
        obs, rewards, dones, infos = zip(*results, strict=True)
        return (
            np.concatenate(obs),
            np.concatenate(rewards),
            np.concatenate(dones),
            [info for part in infos for info in part],
        )

    def close(self) -> None:
        """Close every part."""
        for part in self.parts:
            part.close()

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        """``attr_name`` of the envs at ``indices`` (all by default), in order."""
        return [v for part, local in self._split(indices) for v in part.get_attr(attr_name, local)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        """Set ``attr_name`` on the envs at ``indices``."""
        for part, local in self._split(indices):
            part.set_attr(attr_name, value, local)

    def env_method(
        self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any
    ) -> list[Any]:
        """Call ``method_name`` on the envs at ``indices``; the results, in order."""
        return [
            v
            for part, local in self._split(indices)
            for v in part.env_method(method_name, *method_args, indices=local, **method_kwargs)
        ]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: Any = None) -> list[bool]:
        """Whether the envs at ``indices`` are wrapped with ``wrapper_class``."""
        return [
            v
            for part, local in self._split(indices)
            for v in part.env_is_wrapped(wrapper_class, local)
        ]

    def seed(self, seed: int | None = None) -> list[Any]:
        """Seed part ``i`` with ``seed + (its first env's index)`` (SB3's ``seed + k``)."""
        return [
            v
            for i, part in enumerate(self.parts)
            for v in part.seed(None if seed is None else seed + int(self.bounds[i]))
        ]


def make_mixed_vec_env(
    tasks: list[tuple[str, dict[str, Any], int]],
    *,
    episode_seeds: range,
) -> MixedVecEnv:
    """A :class:`MixedVecEnv` of ``(env_id, gym.make options, n_envs)`` parts, each built by
    :func:`make_batched_vec_env` (batched where the trainee has a batched form).

    Every episode of every part starts from its own seed of ``episode_seeds``: the block
    is cut into one equal share per part, in order, so no seed is used twice. The
    ``episode_seeds`` attribute (:class:`MixedEpisodeSeeds`) saves and restores them all.
    A part of short episodes spends its share first: a part of ``n`` envs whose episodes
    last ``a`` actions can take ``share · a`` env steps (``RuntimeError`` past them).

    Raises:
        ValueError: no tasks, ``n_envs < 1``, an invalid option, or parts whose spaces
            differ.
    """
    if not tasks:
        raise ValueError("make_mixed_vec_env needs at least one (env_id, options, n_envs)")
    share = len(episode_seeds) // len(tasks)
    parts = []
    for i, (env_id, options, n_envs) in enumerate(tasks):
        block = episode_seeds[i * share : (i + 1) * share]
        with warnings.catch_warnings():  # a part without a batched form is expected here
            warnings.filterwarnings("ignore", message=".* has no batched form")
            parts.append(make_batched_vec_env(env_id, n_envs, episode_seeds=block, **options))
    mixed = MixedVecEnv(parts)
    mixed.episode_seeds = MixedEpisodeSeeds([part.episode_seeds for part in parts])
    return mixed
