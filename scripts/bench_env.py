"""Overhead of the environment: a full episode through the env vs a plain PyTorch loop.

Both do the same optimizer steps and validation evaluations at a constant LR; the
ratio of their wall times (medians of interleaved runs in one process, every id
warmed up first) is the cost of the env's observation, reward and bookkeeping
(``benchmarks.env_overhead``).
Goal: <= 1.03; <= 1.05 for observation v1 (the -v1 ids: update moments once per action).
Writes JSON::

    python scripts/bench_env.py                 # MLP on MNIST, GPT tiny on tiny Shakespeare
    python scripts/bench_env.py --env LRSchedule-MLP-v0 --dataset digits --total-steps 500
    python scripts/bench_env.py --env LRSchedule-MLP-v0 LRSchedule-MLP-v1 --out runs/bench/env_v1.json
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated

import tyro

from benchmarks.env_overhead import benchmark_envs
from common.cli import parse
from envs.options import check_env_ids
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


def main(args: Args) -> dict:
    """Measure every id and write the JSON."""
    report = benchmark_envs(
        args.env,
        args.out,
        repeats=args.repeats,
        total_steps=args.total_steps,
        dataset=args.dataset,
        record=asdict(args),
    )
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main(parse(Args))
