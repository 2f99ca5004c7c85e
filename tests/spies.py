"""Test helpers that watch what an env does to its trainee."""

from __future__ import annotations

import gymnasium as gym


def spy_lrs(env: gym.Env) -> list[list[float]]:
    """Record the LR of every optimizer param group at every optimizer step of ``env``.

    ``del env.unwrapped.trainee.train_step`` removes the spy.
    """
    trainee = env.unwrapped.trainee
    seen: list[list[float]] = []
    step = trainee.train_step

    def spying(lr):
        stats = step(lr)
        seen.append([g["lr"] for g in trainee.optimizer.param_groups])
        return stats

    trainee.train_step = spying
    return seen
