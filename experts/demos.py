"""Demonstrations: real env rollouts of an expert (``envs.rollout``), saved with its name.

A demonstration folder holds ``trajectories.npz`` (observations, actions, rewards and
episode lengths), ``infos.json`` and ``meta.json`` naming the expert, its parameters,
the env and the seeds, so BC can be re-run without re-training trainees. They load
back as imitation's ``TrajectoryWithRew``, and are reused only for the same expert,
env (id and options) and seeds (:func:`check_saved`). (imitation's own ``serialize`` goes through
Hugging Face ``datasets``/``pyarrow``, whose current releases need NumPy 2, which
gymnasium 0.29 does not support.)
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from imitation.data.types import TrajectoryWithRew

from common.files import atomic_write_bytes
from envs.rollout import Episode, run_episodes
from experts.policy import SchedulePolicy
from experts.schedules import Schedule, make_schedule

# the names of ``experts.schedules.SCHEDULES``, as a type (tests keep the two equal)
ExpertName = Literal["constant", "linear_warmup", "cosine", "polynomial", "wsd"]


def to_trajectory(episode: Episode) -> TrajectoryWithRew:
    """An episode as imitation's ``TrajectoryWithRew`` (what BC trains on)."""
    return TrajectoryWithRew(
        obs=episode.observations,
        acts=episode.actions,
        infos=np.array(episode.infos),
        terminal=True,
        rews=episode.rewards.astype(np.float32),
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
    trajs = [to_trajectory(e) for e in episodes]
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
                obs=obs[o : o + n + 1],
                acts=acts[a : a + n],
                infos=np.array(info),
                terminal=True,
                rews=rews[a : a + n],
            )
        )
        o, a = o + n + 1, a + n
    return trajectories, json.loads(meta_path.read_text())


def check_saved(
    folder: str | Path,
    *,
    expert: str,
    seeds: Sequence[int],
    env_id: str,
    env_kwargs: dict[str, Any],
) -> None:
    """Refuse saved demonstrations in ``folder`` that are not what a run asks for.

    They must be of the same expert, the same env id and options, and exactly
    ``seeds`` (the same seeds, in order, so the same number). A folder without
    demonstrations passes (they will be collected there).

    Raises:
        ValueError: naming each difference, with the stored and the expected value.
    """
    meta_path = Path(folder) / "meta.json"
    if not meta_path.is_file():
        return
    meta = json.loads(meta_path.read_text())
    expected = {
        "expert": expert,
        "env_id": env_id,
        "env_kwargs": _jsonable(env_kwargs),
        "seeds": list(seeds),
    }
    diffs = [
        f"{key}: stored {meta.get(key)!r}, expected {value!r}"
        for key, value in expected.items()
        if meta.get(key) != value
    ]
    if diffs:
        raise ValueError(
            f"saved demonstrations in {folder} do not match this run ({'; '.join(diffs)}); "
            "use another demonstrations folder, or arguments that match the stored ones"
        )


def _jsonable(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(value))


def collect_or_load(
    folder: str | Path,
    policy: SchedulePolicy,
    env: gym.Env,
    seeds: Sequence[int],
    *,
    env_id: str,
    env_kwargs: dict[str, Any],
    progress: bool = False,
) -> list[TrajectoryWithRew]:
    """An expert's demonstrations on ``seeds``: collected and saved in ``folder``.

    Demonstrations already in ``folder`` are reused when they are of the same expert,
    env and seeds (:func:`check_saved`).

    Raises:
        ValueError: ``folder`` holds demonstrations of another expert, env, options or
            seeds.
    """
    folder = Path(folder)
    if not seeds:
        return []
    if (folder / "meta.json").is_file():
        check_saved(
            folder, expert=policy.schedule.name, seeds=seeds, env_id=env_id, env_kwargs=env_kwargs
        )
        return load_demonstrations(folder)[0]
    desc = f"demos {policy.schedule.name}"
    episodes = run_episodes(env, policy, seeds, desc=desc, progress=progress)
    save_demonstrations(
        folder, episodes, expert=policy.schedule, env_id=env_id, env_kwargs=env_kwargs
    )
    return [to_trajectory(e) for e in episodes]


def collect_experts(
    folder: str | Path,
    experts: Sequence[str],
    env: gym.Env,
    seeds: Sequence[int],
    *,
    env_id: str,
    env_kwargs: dict[str, Any],
    progress: bool = False,
) -> dict[str, list[TrajectoryWithRew]]:
    """Demonstrations of each named expert schedule on ``seeds``, in ``folder/<expert>``.

    Each expert's are collected and saved, or reused, by :func:`collect_or_load`.
    """
    out = {}
    for name in experts:
        expert = SchedulePolicy(make_schedule(name), env.action_space)
        out[name] = collect_or_load(
            Path(folder) / name,
            expert,
            env,
            seeds,
            env_id=env_id,
            env_kwargs=env_kwargs,
            progress=progress,
        )
    return out


def check_saved_experts(
    folder: str | Path,
    experts: Sequence[str],
    seeds: Sequence[int],
    *,
    env_id: str,
    env_kwargs: dict[str, Any],
) -> None:
    """:func:`check_saved` for each expert's folder, ``folder/<expert>`` (as collected).

    Raises:
        ValueError: an expert's saved demonstrations differ from what is asked.
    """
    if not seeds:
        return  # none are asked for: none are loaded
    for name in experts:
        check_saved(
            Path(folder) / name, expert=name, seeds=seeds, env_id=env_id, env_kwargs=env_kwargs
        )
