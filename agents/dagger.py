"""DAgger (Ross et al., 2011) from a privileged expert, across a randomised task.

Round 0 is behavioural cloning: the expert acts, and its actions are the labels. Every
later round runs the current policy (deterministically) on fresh episodes, labels every
state it visited with the action the privileged expert would take there
(``experts.privileged``: the tuned schedule at the reference LR, which needs the
episode's drawn base LR the policy never sees), aggregates the labelled states with all
earlier ones, and refits the actor on the aggregate (``agents.bc.train_actor``). The
labels come from the env's state, not from the observation, so imitation's
``DAggerTrainer`` (whose expert sees only observations) does not fit; the loop is here,
and every rollout goes through the one rollout loop (``envs.rollout.run_episode``).

A round is reproducible from its seeds: the episode seeds are the caller's and the fit
draws only from ``rng``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from imitation.data.types import TrajectoryWithRew
from stable_baselines3.common.policies import ActorCriticPolicy

from agents.bc import BCConfig, action_error, train_actor
from envs.rollout import Episode, run_episode
from experts.privileged import PrivilegedSchedulePolicy


class ExpertActor:
    """The privileged expert acting in ``env``: it reads the episode's base LR from the env."""

    def __init__(self, expert: PrivilegedSchedulePolicy, env: gym.Env) -> None:
        self.expert, self.env = expert, env

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        """The expert's action at the env's current state."""
        return self.expert.label(observation, self.env.unwrapped.base_lr), state


def relabel(episode: Episode, expert: PrivilegedSchedulePolicy) -> TrajectoryWithRew:
    """The states an episode visited, each labelled with the expert's action there."""
    base_lr = episode.base_lr
    if base_lr is None:
        raise ValueError("the episode's infos record no base_lr: run it in an LRScheduleEnv")
    labels = np.stack([expert.label(obs, base_lr) for obs in episode.observations[:-1]])
    return TrajectoryWithRew(
        obs=episode.observations,
        acts=labels.astype(np.float32),
        infos=None,
        terminal=True,
        rews=episode.rewards.astype(np.float32),
    )


@dataclass(frozen=True)
class DAggerConfig:
    """Rounds of DAgger.

    Attributes:
        rounds: rounds after round 0 (BC from the expert's own episodes).
        bc: the fit of each round (on the aggregate of every round so far).
    """

    rounds: int = 3
    bc: BCConfig = field(default_factory=lambda: BCConfig(epochs=50, critic_epochs=0))

    def __post_init__(self) -> None:
        if self.rounds < 0:
            raise ValueError(f"rounds={self.rounds!r} is invalid; expected an integer >= 0")


Collect = Callable[[int, ActorCriticPolicy | None, Sequence[int]], list[Episode]]
"""``collect(round, policy, seeds)``: the round's episodes (``policy`` None: the expert acts)."""


def local_collect(env: gym.Env, expert: PrivilegedSchedulePolicy) -> Collect:
    """Episodes run one after another in ``env`` (the expert through :class:`ExpertActor`)."""
    actor = ExpertActor(expert, env)

    def collect(_: int, policy: ActorCriticPolicy | None, seeds: Sequence[int]) -> list[Episode]:
        return [run_episode(env, actor if policy is None else policy, s) for s in seeds]

    return collect


def dagger_round(
    r: int,
    policy: ActorCriticPolicy,
    episodes: Sequence[Episode],
    data: list[TrajectoryWithRew],
    expert: PrivilegedSchedulePolicy | Sequence[PrivilegedSchedulePolicy],
    config: DAggerConfig,
    *,
    rng: np.random.Generator,
    validation: Sequence[TrajectoryWithRew] = (),
    progress_bar: bool = False,
) -> dict[str, Any]:
    """One round: label ``episodes`` with the expert's actions, add them to ``data`` (in
    place), refit ``policy`` on all of it; the round's record.

    ``expert`` is one expert for every episode, or one per episode (a mixture of tasks,
    each with its own reference LR). The record: round, episodes, aggregate size
    (transitions), the action error on the round's own states before the refit (None in
    round 0, whose episodes are the expert's), on the ``validation`` expert episodes
    after it, and the mean best validation loss and drawn base LRs of the round's episodes.
    """
    experts = [expert] * len(episodes) if isinstance(expert, PrivilegedSchedulePolicy) else expert
    if len(experts) != len(episodes):
        raise ValueError(
            f"{len(experts)} experts for {len(episodes)} episodes; give one "
            "expert, or one per episode"
        )
    labelled = [relabel(e, x) for e, x in zip(episodes, experts, strict=True)]
    before = action_error(policy, labelled) if r > 0 else None
    data += labelled
    train_actor(policy, data, config.bc, rng=rng, progress_bar=progress_bar)
    return {
        "round": r,
        "episodes": len(episodes),
        "transitions": sum(len(t.acts) for t in data),
        "action_error_on_visited_before_fit": before,
        "action_error_validation": action_error(policy, validation) if validation else None,
        "rollout_best_val_loss": float(np.mean([e.best_val_loss for e in episodes])),
        "rollout_base_lrs": [e.base_lr for e in episodes],
    }


def run_dagger(
    policy: ActorCriticPolicy,
    env: gym.Env,
    expert: PrivilegedSchedulePolicy,
    round_seeds: Sequence[Sequence[int]],
    config: DAggerConfig,
    *,
    rng: np.random.Generator,
    validation_seeds: Sequence[int] = (),
    on_round: Callable[[dict[str, Any]], None] | None = None,
    progress_bar: bool = False,
    collect: Collect | None = None,
) -> list[dict[str, Any]]:
    """Round 0 and ``config.rounds`` DAgger rounds; ``round_seeds[r]`` are round r's episodes.

    Returns one record per round (:func:`dagger_round`). ``collect`` runs each round's
    episodes (default: one after another in ``env``; ``experiments.tuningfree`` passes
    one that runs them on an evaluation backend); the validation episodes are the
    expert's in ``env``.
    """
    if len(round_seeds) != config.rounds + 1:
        raise ValueError(f"{len(round_seeds)} seed lists for {config.rounds + 1} rounds")
    local = local_collect(env, expert)
    collect = collect or local
    validation = [relabel(e, expert) for e in local(0, None, validation_seeds)]
    data: list[TrajectoryWithRew] = []
    records = []
    for r, seeds in enumerate(round_seeds):
        episodes = collect(r, None if r == 0 else policy, seeds)
        record = dagger_round(
            r,
            policy,
            episodes,
            data,
            expert,
            config,
            rng=rng,
            validation=validation,
            progress_bar=progress_bar,
        )
        records.append(record)
        if on_round is not None:
            on_round(record)
    return records
