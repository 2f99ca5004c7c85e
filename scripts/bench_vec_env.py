"""Throughput of K envs: the batched vec env vs K single envs in turn vs SubprocVecEnv(K).

Optimizer steps per second summed over the K envs (``benchmarks.throughput.measure_throughput``:
reset, a warm-up step, then timed env steps at the base LR) and memory per env
(``benchmarks.throughput.memory_per_env``). Each (method, K) is measured ``repeats`` times,
methods interleaved; the median is reported. Writes JSON and a plot of steps/s against
K (one line per method, one panel per env id) with its data as CSV::

    python scripts/bench_vec_env.py                          # MLP-MNIST and GPT-tiny, K up to 32
    python scripts/bench_vec_env.py --ks 1 8 --env LRSchedule-MLP-v0 --env-steps 8
    python scripts/bench_vec_env.py --ks 1 8 --env LRSchedule-MLP-v0 --env-steps 8 --profile
    python scripts/bench_vec_env.py --ks 1 8 32 128 --max-subproc-k 16    # on a GPU

An id whose trainee has no batched form (GPT) measures only the single and subprocess
methods. SubprocVecEnv starts one process per env (each loads torch and the data), so
it is measured up to ``--max-subproc-k`` only.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Literal

import gymnasium as gym
import numpy as np
import torch
import tyro

from benchmarks.throughput import METHODS, add_speedups, describe_step_profile, measure_methods
from common.cli import parse
from common.files import write_json
from common.plots import Panel, save_panels
from envs.options import check_env_ids
from trainees.batched.trainee import BATCHED_OPTIMIZERS, BATCHED_TRAINEES
from trainees.image import ImageDatasetName

EnvIds = Annotated[tuple[str, ...], tyro.conf.arg(aliases=("--envs", "--env-ids"))]
# benchmarks.throughput.METHODS and trainees.batched.trainee.BATCHED_OPTIMIZERS as types (tests keep
# them equal)
VecMethod = Literal["batched", "single", "subproc"]
BatchedOptimizer = Literal["adamw", "adamw_fused"]


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
    methods: tuple[VecMethod, ...] = METHODS
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
        check_env_ids(*self.env)
        unknown = sorted(set(self.methods) - set(METHODS))
        if unknown:
            raise ValueError(f"--methods {unknown} invalid; valid: {', '.join(METHODS)}")
        if self.optimizer not in (None, *BATCHED_OPTIMIZERS):
            raise ValueError(
                f"--optimizer {self.optimizer!r} is invalid; valid: {', '.join(BATCHED_OPTIMIZERS)}"
            )
        if len(self.env_steps) != len(self.env):
            raise ValueError(
                f"--env-steps {' '.join(map(str, self.env_steps))} needs one value per env id "
                f"({len(self.env)}: {' '.join(self.env)})"
            )


def bench(env_id: str, env_steps: int, args: Args) -> list[dict]:
    options = {"dataset": args.dataset} if "MLP" in env_id else {}
    if args.optimizer is not None:
        options["optimizer"] = args.optimizer
    trainee = gym.spec(env_id).kwargs["trainee"]
    rows = []
    for k in args.ks:
        methods = [
            m
            for m in args.methods
            if not (m == "batched" and trainee not in BATCHED_TRAINEES)
            and not (m == "subproc" and k > args.max_subproc_k)
        ]
        for row in measure_methods(env_id, k, methods, options, env_steps, repeats=args.repeats,
                                   memory=args.memory, floor=args.floor,
                                   profile=args.profile):  # fmt: skip
            rows.append(row)
            ceiling = row.get("ceiling_steps_per_second")
            print(
                f"{env_id:20s} {row['method']:8s} K={k:3d} {row['steps_per_second']:8.0f} "
                f"steps/s {row['memory_mb_per_env'] or 0:7.1f} MB/env"
                + (f"  (floor: at most {ceiling:6.0f} steps/s)" if ceiling else ""),
                flush=True,
            )
            if "step_profile" in row:
                print(describe_step_profile(row["step_profile"]), flush=True)
    return rows


def main(args: Args) -> dict:
    """Measure every id, then write the JSON and the plot."""
    rows = []
    for env_id, steps in zip(args.env, args.env_steps, strict=True):
        rows += bench(env_id, steps, args)
    add_speedups(rows)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    report = {
        "args": asdict(args),
        "torch": torch.__version__,
        "device": device,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "rows": rows,
    }
    write_json(args.out, report)
    panels = []
    for env_id in args.env:
        panel = Panel(env_id, "K (envs)", "optimizer steps / s (all envs)", logx=True, logy=True)
        for m in args.methods:
            pts = [
                (r["k"], r["steps_per_second"])
                for r in rows
                if r["env_id"] == env_id and r["method"] == m
            ]
            if pts:
                panel.series[m] = tuple(np.array(pts).T.tolist())
        ceiling = [
            (r["k"], r["ceiling_steps_per_second"])
            for r in rows
            if r["env_id"] == env_id and "ceiling_steps_per_second" in r
        ]
        if ceiling:  # what the batched method could reach if only its arithmetic cost
            panel.series["batched floor's ceiling"] = tuple(np.array(ceiling).T.tolist())
        panels.append(panel)
    save_panels(Path(args.out).with_suffix(".png"), panels, title=f"vectorised envs on {device}")
    print(f"wrote {args.out} and {Path(args.out).with_suffix('.png')}")
    return report


if __name__ == "__main__":
    main(parse(Args))
