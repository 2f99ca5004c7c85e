"""Throughput of K envs: the batched vec env vs K single envs in turn vs SubprocVecEnv(K).

Optimizer steps/s over the K envs and memory per env, methods interleaved, medians
(``benchmarks.throughput.benchmark_vec_envs``: no batched method for the GPT, SubprocVecEnv
up to ``--max-subproc-k``). Writes JSON and a plot of steps/s against K, with its CSV::

    python scripts/bench_vec_env.py                          # MLP-MNIST and GPT-tiny, K up to 32
    python scripts/bench_vec_env.py --ks 1 8 --env LRSchedule-MLP-v0 --env-steps 8 --profile
    python scripts/bench_vec_env.py --ks 1 8 32 128 --max-subproc-k 16    # on a GPU
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, get_args

import tyro

from benchmarks.throughput import BatchedOptimizer, VecMethod, benchmark_vec_envs, check_vec_args
from common.cli import parse
from trainees.image import ImageDatasetName

EnvIds = Annotated[tuple[str, ...], tyro.conf.arg(aliases=("--envs", "--env-ids"))]


@dataclass(frozen=True)
class Args:
    """Benchmark vectorised envs.

    Attributes:
        env: registered ids to measure.
        ks: numbers of envs.
        methods: batched (one BatchedTrainee), single (DummyVecEnv), subproc (SubprocVecEnv).
        env_steps: timed env steps per measurement, one per id (MLP, GPT); each env step is
            ``steps_per_action`` optimizer steps.
        repeats: measurements per (method, K); the median is reported.
        max_subproc_k: largest K measured with SubprocVecEnv.
        dataset: dataset of the MLP id (mnist | digits).
        optimizer: the trainees' optimizer (``adamw`` or ``adamw_fused``, the two with a
            batched form); None: the id's default (``adamw``).
        memory: also measure memory per env (a fresh process per in-process method and K).
        floor: also time, alone, the matrix products, the AdamW update and the evaluations
            of one batched step (``benchmarks.throughput.batched_floor``): the throughput that the
            batched method cannot exceed on this machine.
        profile: also profile the single and the batched optimizer step
            (``benchmarks.throughput.step_profile``): time inside kernels, in matrix products,
            and outside kernels (Python, dispatch); CPU only.
        out: JSON file; the plot goes beside it.
    """

    env: EnvIds = ("LRSchedule-MLP-v0", "LRSchedule-GPT-v0")
    ks: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    methods: tuple[VecMethod, ...] = get_args(VecMethod)  # benchmarks.throughput.METHODS
    env_steps: tuple[int, ...] = (8, 1)
    repeats: int = 3
    max_subproc_k: int = 8
    dataset: Annotated[ImageDatasetName, tyro.conf.arg(aliases=("--image-dataset",))] = "mnist"
    optimizer: BatchedOptimizer | None = None
    memory: bool = True
    floor: bool = True
    profile: bool = False
    out: str = "runs/bench/vec_env.json"

    def __post_init__(self) -> None:
        check_vec_args(self.env, self.methods, self.optimizer, self.env_steps)


def main(args: Args) -> dict:
    """Measure every id, then write the JSON and the plot."""
    report = benchmark_vec_envs(
        args.env,
        args.out,
        env_steps=args.env_steps,
        ks=args.ks,
        methods=args.methods,
        max_subproc_k=args.max_subproc_k,
        dataset=args.dataset,
        optimizer=args.optimizer,
        repeats=args.repeats,
        memory=args.memory,
        floor=args.floor,
        profile=args.profile,
        record=asdict(args),
    )
    print(f"wrote {args.out} and {Path(args.out).with_suffix('.png')}")
    return report


if __name__ == "__main__":
    main(parse(Args))
