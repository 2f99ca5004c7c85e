"""What the environment costs a training run: a whole episode through the env vs a plain loop.

Both do the same optimizer steps and validation evaluations at a constant LR; the ratio
of their wall times (medians of interleaved runs in one process) is the cost of the env's
observation, reward and bookkeeping (goal: <= 1.03). :func:`benchmark_envs` is the job
behind ``scripts/bench_env.py``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from torch import nn

from common.files import write_json
from envs.options import EnvOptions
from envs.rollout import run_episode
from experts.policy import SchedulePolicy
from experts.schedules import Constant
from trainees import TorchTrainee

IMAGE_TRAINEES = ("mlp", "resnet18")  # the trainees whose ids take a dataset (any version)


def env_episode(env: gym.Env, seed: int) -> float:
    """Seconds for reset + a whole episode at the base LR (the constant expert)."""
    return run_episode(env, SchedulePolicy(Constant(), env.action_space), seed).seconds


def plain_loop(trainee: TorchTrainee, eval_every: int, seed: int) -> float:
    """Seconds for the same run written as an ordinary PyTorch training loop."""
    t0 = time.perf_counter()
    trainee.reset(seed)  # model and AdamW built the same way
    model, opt = trainee.model, trainee.optimizer
    gen = torch.Generator().manual_seed(seed)
    for g in opt.param_groups:
        g["lr"] = trainee.base_lr
    model.train()
    for step in range(1, trainee.total_steps + 1):
        x, y = trainee.next_batch(gen)
        opt.zero_grad(set_to_none=True)
        loss = trainee.loss(model, x, y)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), trainee.config.grad_clip)
        opt.step()
        loss.item()  # an ordinary loop logs its loss
        if step % eval_every == 0 or step == trainee.total_steps:
            trainee.evaluate()
            model.train()
    return time.perf_counter() - t0


def _make(env_id: str, total_steps: int | None, dataset: str) -> gym.Env:
    image = gym.spec(env_id).kwargs.get("trainee") in IMAGE_TRAINEES
    return EnvOptions(total_steps=total_steps, dataset=dataset if image else None).make(env_id)


def _timed(run: Callable[[], float]) -> tuple[float, float]:
    """``run``'s own wall seconds, and the CPU seconds (this process's) it took."""
    c0 = time.process_time()
    wall = run()
    return wall, time.process_time() - c0


def _pair(env: gym.Env, seed: int, env_first: bool) -> tuple[float, float, float, float]:
    """One (env episode, plain loop) pair on the env's trainee, in the order given: their
    wall seconds, then their CPU seconds (which a busy neighbour on the machine inflates
    less than the wall clock)."""
    inner = env.unwrapped
    runs = [
        lambda: env_episode(env, seed),
        lambda: plain_loop(inner.trainee, inner.config.eval_every, seed),
    ]
    if env_first:
        (e, ec), (p, pc) = (_timed(r) for r in runs)
    else:
        (p, pc), (e, ec) = (_timed(r) for r in reversed(runs))
    return e, p, ec, pc


def _summary(
    env: gym.Env, env_t: list[float], plain_t: list[float], env_c: list[float], plain_c: list[float]
) -> dict[str, Any]:
    inner = env.unwrapped
    steps = inner.trainee.total_steps
    return {
        "total_steps": steps,
        "steps_per_action": inner.config.steps_per_action,
        "eval_every": inner.config.eval_every,
        "env_seconds": env_t,
        "plain_seconds": plain_t,
        "env_median_s": statistics.median(env_t),
        "plain_median_s": statistics.median(plain_t),
        "ratio": statistics.median(env_t) / statistics.median(plain_t),
        # each env episode over the plain loop run beside it: a drift of the machine's
        # speed between repeats cancels in each pair
        "ratio_paired_median": statistics.median(
            e / p for e, p in zip(env_t, plain_t, strict=True)
        ),
        "env_cpu_seconds": env_c,
        "plain_cpu_seconds": plain_c,
        "cpu_ratio_paired_median": statistics.median(
            e / p for e, p in zip(env_c, plain_c, strict=True)
        ),
        "overhead_ms_per_optimizer_step": 1e3
        * (statistics.median(env_t) - statistics.median(plain_t))
        / steps,
    }


def env_overheads(
    env_ids: Sequence[str],
    *,
    repeats: int = 5,
    total_steps: int | None = None,
    dataset: str = "mnist",
) -> dict[str, dict[str, Any]]:
    """Env episodes against plain loops on each id's trainee; medians and their ratio by id.

    Every id is warmed up first (one env episode and one plain loop: allocator, caches,
    lazy imports), then the ids are measured interleaved, one (env, plain) pair of each per
    repeat, the ids' order rotated and the pair's order alternated from repeat to repeat,
    so that a drift of the machine's speed falls on every id and on both sides alike.

    Args:
        env_ids: registered ids.
        repeats: (env, plain) pairs per id.
        total_steps: optimizer steps per episode (None: the id's default).
        dataset: the dataset of the image ids (``IMAGE_TRAINEES``); the others ignore it.
    """
    envs = {env_id: _make(env_id, total_steps, dataset) for env_id in env_ids}
    for env in envs.values():
        _pair(env, 0, env_first=True)
    times: dict[str, tuple[list[float], ...]] = {i: ([], [], [], []) for i in envs}
    ids = list(envs)
    for r in range(repeats):
        for env_id in ids[r % len(ids) :] + ids[: r % len(ids)]:
            for column, value in zip(
                times[env_id], _pair(envs[env_id], r, env_first=r % 2 == 0), strict=True
            ):
                column.append(value)
    return {i: _summary(envs[i], *times[i]) for i in ids}


def env_overhead(
    env_id: str, *, repeats: int = 5, total_steps: int | None = None, dataset: str = "mnist"
) -> dict[str, Any]:
    """:func:`env_overheads` of one id."""
    return env_overheads([env_id], repeats=repeats, total_steps=total_steps, dataset=dataset)[
        env_id
    ]


def benchmark_envs(
    env_ids: Sequence[str],
    out: str | Path,
    *,
    repeats: int = 5,
    total_steps: int | None = None,
    dataset: str = "mnist",
    record: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """:func:`env_overheads` of the ids (measured interleaved), one line each, into the
    JSON ``out``.

    Args:
        env_ids: registered ids.
        out: the JSON file to write.
        repeats, total_steps, dataset: as :func:`env_overheads`.
        record: the command's arguments, stored as the report's ``args``.

    Returns:
        The report written: ``args``, ``torch`` and ``results`` by id.
    """
    results = env_overheads(env_ids, repeats=repeats, total_steps=total_steps, dataset=dataset)
    report = {"args": dict(record or {}), "torch": torch.__version__, "results": results}
    for env_id, r in results.items():
        print(
            f"{env_id:24s} env {r['env_median_s']:7.2f} s  plain {r['plain_median_s']:7.2f} s  "
            f"ratio {r['ratio']:.3f}  paired {r['ratio_paired_median']:.3f}  "
            f"CPU paired {r['cpu_ratio_paired_median']:.3f}",
            flush=True,
        )
    write_json(out, report)
    return report
