"""Overhead of the environment: a full episode through the env vs a plain PyTorch loop.

Both do the same optimizer steps and validation evaluations at a constant LR; the
ratio of their wall times (median of alternating runs in one process) is the cost
of the env's observation, reward and bookkeeping. Goal: <= 1.03. Writes JSON::

    python scripts/bench_env.py                 # MLP on MNIST, GPT tiny on tiny Shakespeare
    python scripts/bench_env.py --env LRSchedule-MLP-v0 --dataset digits --total-steps 500
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Annotated

import gymnasium as gym
import torch
import tyro
from torch import nn

from common.cli import parse
from common.files import write_json
from envs.options import EnvOptions, check_env_ids
from envs.rollout import run_episode
from experts.policy import SchedulePolicy
from experts.schedules import Constant
from trainees import TorchTrainee
from trainees.image import ImageDatasetName

EnvIds = Annotated[tuple[str, ...], tyro.conf.arg(aliases=("--envs", "--env-ids"))]


@dataclass(frozen=True)
class Args:
    """Benchmark env overhead.

    Attributes:
        env: registered ids to measure.
        repeats: alternating (env, plain) pairs per id; the median of each is reported.
        total_steps: optimizer steps per episode (None: the id's default).
        dataset: dataset of the MLP / ResNet ids (mnist | digits).
        out: JSON file to write.
    """

    env: EnvIds = ("LRSchedule-MLP-v0", "LRSchedule-GPT-v0")
    repeats: int = 5
    total_steps: int | None = None
    dataset: Annotated[ImageDatasetName, tyro.conf.arg(aliases=("--image-dataset",))] = "mnist"
    out: str = "runs/bench/env.json"

    def __post_init__(self) -> None:
        check_env_ids(*self.env)


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


def bench(env_id: str, args: Args) -> dict:
    """Alternate env episodes and plain loops on one trainee; report medians and their ratio."""
    image = env_id in ("LRSchedule-MLP-v0", "LRSchedule-ResNet18-v0")
    options = EnvOptions(total_steps=args.total_steps, dataset=args.dataset if image else None)
    env = options.make(env_id)
    inner = env.unwrapped
    env_episode(env, 0)  # warm-up: allocator, caches, lazy imports
    env_t, plain_t = [], []
    for i in range(args.repeats):
        env_t.append(env_episode(env, i))
        plain_t.append(plain_loop(inner.trainee, inner.config.eval_every, i))
    ratio = statistics.median(env_t) / statistics.median(plain_t)
    steps = inner.trainee.total_steps
    return {
        "total_steps": steps,
        "steps_per_action": inner.config.steps_per_action,
        "eval_every": inner.config.eval_every,
        "env_seconds": env_t,
        "plain_seconds": plain_t,
        "env_median_s": statistics.median(env_t),
        "plain_median_s": statistics.median(plain_t),
        "ratio": ratio,
        "overhead_ms_per_optimizer_step": 1e3
        * (statistics.median(env_t) - statistics.median(plain_t))
        / steps,
    }


def main(args: Args) -> dict:
    """Measure every id and write the JSON."""
    report = {"args": asdict(args), "torch": torch.__version__, "results": {}}
    for env_id in args.env:
        report["results"][env_id] = r = bench(env_id, args)
        print(
            f"{env_id:24s} env {r['env_median_s']:7.2f} s  plain {r['plain_median_s']:7.2f} s  "
            f"ratio {r['ratio']:.3f}",
            flush=True,
        )
    write_json(args.out, report)
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main(parse(Args))
