"""Throughput of K envs: the batched vec env vs K single envs in turn vs SubprocVecEnv(K).

Optimizer steps per second summed over the K envs (``envs.vec_env.measure_throughput``:
reset, a warm-up step, then timed env steps at the base LR), and resident memory per
env (measured in a fresh process). Each (method, K) is measured ``repeats`` times, the methods interleaved, and the
median is reported. Writes JSON, and a plot of steps/s against K (one line per method,
one panel per env id) with its data as CSV::

    python scripts/bench_vec_env.py                          # MLP-MNIST and GPT-tiny, K up to 32
    python scripts/bench_vec_env.py --ks 1 8 --env-ids LRSchedule-MLP-v0
    python scripts/bench_vec_env.py --ks 1 8 32 128 --max-subproc-k 16    # on a GPU

An id whose trainee has no batched form (GPT) measures only the single and subprocess
methods. SubprocVecEnv starts one process per env (each loads torch and the data), so
it is measured up to ``--max-subproc-k`` only.
"""

from __future__ import annotations

import functools
import gc
import multiprocessing
import os
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
import tyro
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from agents.plots import Panel, save_panels
from envs.vec_env import make_batched_vec_env, measure_throughput
from trainees.batched import BATCHED_TRAINEES
from trainees.files import write_json

METHODS = ("batched", "single", "subproc")


@dataclass(frozen=True)
class Args:
    """Benchmark vectorised envs.

    Attributes:
        env_ids: registered ids to measure.
        ks: numbers of envs.
        methods: batched (one BatchedTrainee), single (DummyVecEnv), subproc (SubprocVecEnv).
        env_steps: timed env steps per measurement, per id (MLP, GPT); each env step is
            ``steps_per_action`` optimizer steps.
        repeats: measurements per (method, K); the median is reported.
        max_subproc_k: largest K measured with SubprocVecEnv.
        image_dataset: dataset of the MLP id.
        out: JSON file; the plot goes beside it.
    """

    env_ids: tuple[str, ...] = ("LRSchedule-MLP-v0", "LRSchedule-GPT-v0")
    ks: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    methods: tuple[str, ...] = METHODS
    env_steps: tuple[int, ...] = (8, 1)
    repeats: int = 3
    max_subproc_k: int = 8
    image_dataset: str = "mnist"
    out: str = "runs/bench/vec_env.json"


def rss_bytes(pid: int | None = None) -> int:
    """Resident memory of a process (Linux ``/proc``), in bytes; 0 where unknown."""
    try:
        pages = Path(f"/proc/{pid or 'self'}/statm").read_text().split()[1]
    except OSError:
        return 0
    return int(pages) * os.sysconf("SC_PAGE_SIZE")


def make_env_with_threads(env_id: str, threads: int, **options) -> gym.Env:
    """``gym.make`` in a worker process that uses ``threads`` torch threads."""
    torch.set_num_threads(threads)
    return gym.make(env_id, **options)


def build(method: str, env_id: str, k: int, options: dict) -> VecEnv:
    if method == "batched":
        return make_batched_vec_env(env_id, k, **options)
    if method == "single":
        return make_vec_env(env_id, k, env_kwargs=options, vec_env_cls=DummyVecEnv)
    # K worker processes share the cores: each gets its share of torch threads (with
    # torch's default, K x cores threads thrash: 25 steps/s at K = 8 on 2 cores)
    threads = max(1, (os.cpu_count() or 1) // k)
    return make_vec_env(
        functools.partial(make_env_with_threads, env_id, threads),
        k,
        env_kwargs=options,
        vec_env_cls=SubprocVecEnv,
    )


def measure(method: str, env_id: str, k: int, options: dict, env_steps: int) -> dict:
    """One measurement of optimizer steps per second (in this process)."""
    gc.collect()
    vec = build(method, env_id, k, options)
    try:
        return measure_throughput(vec, env_steps)
    finally:
        vec.close()


def memory_per_env(method: str, env_id: str, k: int, options: dict) -> float:
    """MB of resident memory per env after a reset and one step.

    In-process methods are measured in a fresh process (memory this one freed earlier
    would otherwise be reused and hide the cost); SubprocVecEnv by its workers' memory.
    """
    if method == "subproc":
        vec = build(method, env_id, k, options)
        try:
            measure_throughput(vec, 1)
            return sum(rss_bytes(p.pid) for p in vec.processes) / k / 2**20
        finally:
            vec.close()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(_memory_in_fresh_process, (method, env_id, k, options))


def _memory_in_fresh_process(method: str, env_id: str, k: int, options: dict) -> float:
    before = rss_bytes()
    vec = build(method, env_id, k, options)
    measure_throughput(vec, 1)
    return (rss_bytes() - before) / k / 2**20


def bench(env_id: str, env_steps: int, args: Args) -> list[dict]:
    options = {"dataset": args.image_dataset} if "MLP" in env_id else {}
    trainee = gym.spec(env_id).kwargs["trainee"]
    rows = []
    for k in args.ks:
        methods = [
            m
            for m in args.methods
            if not (m == "batched" and trainee not in BATCHED_TRAINEES)
            and not (m == "subproc" and k > args.max_subproc_k)
        ]
        runs: dict[str, list[dict]] = {m: [] for m in methods}
        for _ in range(args.repeats):  # interleaved: slow drifts of the machine hit all
            for m in methods:
                runs[m].append(measure(m, env_id, k, options, env_steps))
        for m, results in runs.items():
            row = {
                "env_id": env_id,
                "method": m,
                "k": k,
                "steps_per_second": statistics.median(r["steps_per_second"] for r in results),
                "all_steps_per_second": [r["steps_per_second"] for r in results],
                "memory_mb_per_env": memory_per_env(m, env_id, k, options),
                "optimizer_steps": results[0]["optimizer_steps"],
            }
            rows.append(row)
            print(
                f"{env_id:20s} {m:8s} K={k:3d} {row['steps_per_second']:8.0f} steps/s "
                f"{row['memory_mb_per_env']:7.1f} MB/env",
                flush=True,
            )
    return rows


def main(args: Args) -> dict:
    """Measure every id, then write the JSON and the plot."""
    if len(args.env_steps) != len(args.env_ids):
        raise ValueError(
            f"env_steps={args.env_steps} needs one value per env id ({len(args.env_ids)})"
        )
    rows = []
    for env_id, steps in zip(args.env_ids, args.env_steps, strict=True):
        rows += bench(env_id, steps, args)
    for row in rows:  # speed-up over one single env of the same id, when measured
        base = [
            r["steps_per_second"]
            for r in rows
            if r["env_id"] == row["env_id"] and r["method"] == "single" and r["k"] == 1
        ]
        row["speedup_vs_single_env"] = row["steps_per_second"] / base[0] if base else None
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
    for env_id in args.env_ids:
        panel = Panel(env_id, "K (envs)", "optimizer steps / s (all envs)", logx=True, logy=True)
        for m in args.methods:
            pts = [
                (r["k"], r["steps_per_second"])
                for r in rows
                if r["env_id"] == env_id and r["method"] == m
            ]
            if pts:
                panel.series[m] = tuple(np.array(pts).T.tolist())
        panels.append(panel)
    save_panels(Path(args.out).with_suffix(".png"), panels, title=f"vectorised envs on {device}")
    print(f"wrote {args.out} and {Path(args.out).with_suffix('.png')}")
    return report


if __name__ == "__main__":
    main(tyro.cli(Args))
