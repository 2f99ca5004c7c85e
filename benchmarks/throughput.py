"""Measuring vectorised envs: optimizer steps per second and memory per env.

(Above 400 lines on purpose: the throughput, memory, batched-floor and step-profile
measurements all build their vec envs with the same helpers, and the job that runs them
sits with them; each part is short.)

:func:`benchmark_vec_envs` (the job behind ``scripts/bench_vec_env.py``) compares three
ways to run K envs with these: the batched vec env (``"batched"``), SB3's
``DummyVecEnv`` of single envs (``"single"``) and ``SubprocVecEnv`` (``"subproc"``).
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from common.files import write_json
from common.plots import Panel, save_panels
from envs.options import check_env_ids
from envs.vec_env import make_batched_vec_env
from trainees.base import resolve_device
from trainees.batched.grouped import grouped_product
from trainees.batched.trainee import BATCHED_OPTIMIZERS, BATCHED_TRAINEES

METHODS = ("batched", "single", "subproc")
# METHODS and trainees.batched.trainee.BATCHED_OPTIMIZERS as types (tests keep them equal)
VecMethod = Literal["batched", "single", "subproc"]
BatchedOptimizer = Literal["adamw", "adamw_fused"]


def measure_throughput(vec: VecEnv, n_steps: int, seed: int = 0) -> dict[str, float]:
    """Optimizer steps per second of ``vec``, summed over its envs, at the base LR.

    Resets ``vec`` (seeded), takes one warm-up step, then times ``n_steps`` env steps
    with the zero action (continuous envs: the base LR). Episodes that end are reset
    inside the timed steps, as they are when an agent collects experience.
    """
    if n_steps < 1:
        raise ValueError(f"n_steps={n_steps!r} is invalid; expected an integer >= 1")
    steps_per_action = vec.env_method("get_wrapper_attr", "config", indices=0)[0].steps_per_action
    actions = np.zeros((vec.num_envs, *vec.action_space.shape), dtype=vec.action_space.dtype)
    vec.seed(seed)
    vec.reset()
    vec.step(actions)  # warm-up: allocator, lazy imports, first evaluation
    t0 = time.perf_counter()
    for _ in range(n_steps):
        vec.step(actions)
    seconds = time.perf_counter() - t0
    optimizer_steps = vec.num_envs * n_steps * steps_per_action
    return {
        "seconds": seconds,
        "optimizer_steps": optimizer_steps,
        "steps_per_second": optimizer_steps / seconds,
    }


def measure_once(method: str, env_id: str, k: int, options: dict, env_steps: int) -> dict:
    """One measurement of K envs run by ``method`` (in this process; see ``make_vec``)."""
    vec = make_vec(method, env_id, k, options)
    try:
        return measure_throughput(vec, env_steps)
    finally:
        vec.close()


def measure_methods(
    env_id: str,
    k: int,
    methods: Sequence[str],
    options: dict,
    env_steps: int,
    *,
    repeats: int = 3,
    memory: bool = True,
    floor: bool = True,
    profile: bool = False,
) -> list[dict[str, Any]]:
    """One row per method: median optimizer steps/s of ``repeats`` measurements.

    The measurements are interleaved (method by method, ``repeats`` times), so slow
    drifts of the machine hit every method. Each row also has the memory per env
    (``memory``) and, for the batched method, its :func:`batched_floor` (``floor``) and
    its :func:`step_profile` (``profile``).
    """
    runs: dict[str, list[dict]] = {m: [] for m in methods}
    for _ in range(repeats):
        for m in methods:
            runs[m].append(measure_once(m, env_id, k, options, env_steps))
    rows = []
    for m, results in runs.items():
        row = {
            "env_id": env_id,
            "method": m,
            "k": k,
            "steps_per_second": statistics.median(r["steps_per_second"] for r in results),
            "all_steps_per_second": [r["steps_per_second"] for r in results],
            "memory_mb_per_env": memory_per_env(m, env_id, k, options) if memory else None,
            "optimizer_steps": results[0]["optimizer_steps"],
        }
        if m == "batched" and floor:
            row |= batched_floor(env_id, k, options)
        if m == "batched" and profile:
            row["step_profile"] = step_profile(env_id, k, options)
        rows.append(row)
    return rows


def add_speedups(rows: list[dict[str, Any]]) -> None:
    """Each row's steps/s over one single env of its id, when measured.

    ``speedup_vs_single_env`` (and ``ceiling_speedup_vs_single_env`` for the floor) is
    over the single env at K = 1; ``speedup_vs_single_same_k`` is over the K single
    envs stepped in turn measured beside it (interleaved, so the machine's speed drifts
    alike for both: one env's rate, as K envs in turn each run at it).
    """
    single = {(r["env_id"], r["k"]): r["steps_per_second"] for r in rows if r["method"] == "single"}
    for row in rows:
        base, beside = single.get((row["env_id"], 1)), single.get((row["env_id"], row["k"]))
        row["speedup_vs_single_env"] = row["steps_per_second"] / base if base else None
        row["speedup_vs_single_same_k"] = row["steps_per_second"] / beside if beside else None
        if "ceiling_steps_per_second" in row:
            row["ceiling_speedup_vs_single_env"] = (
                row["ceiling_steps_per_second"] / base if base else None
            )


@contextlib.contextmanager
def _batched_vec_env(env_id: str, k: int, options: dict) -> Iterator[Any]:
    """The unwrapped batched vec env of ``env_id``, model ``j`` reset with seed ``j``."""
    vec = make_batched_vec_env(env_id, k, **options)
    try:
        inner = vec.unwrapped
        for j in range(k):
            inner.trainee.reset(j, j)
        yield inner
    finally:
        vec.close()


def batched_floor(env_id: str, k: int, options: dict, repeats: int = 30) -> dict[str, Any]:
    """What one optimizer step of K batched models cannot go below on this machine, in ms.

    Each part is timed alone (median of ``repeats``) at the shapes of the real step:
    ``products``, the matrix products of every linear layer (the forward product, the
    weight-gradient product, and the input-gradient product of every layer but the
    first; ``trainees.batched.trainee.grouped_product``, as the step computes them);
    ``adamw``, one ``BatchedAdamW`` step of the K models; ``evaluation``, one
    evaluation of the K models divided by ``eval_every``. The real step also gathers
    the batches, applies activations and the loss, computes the gradient norms, clips,
    and runs the K envs' bookkeeping. ``ceiling_steps_per_second`` is K / the floor.
    """
    with _batched_vec_env(env_id, k, options) as inner:
        batched, eval_every = inner.trainee, inner.envs[0].unwrapped.config.eval_every
        gen = torch.Generator(device=batched.device).manual_seed(0)

        def rand(*shape: int) -> torch.Tensor:
            return torch.randn(shape, generator=gen, device=batched.device)

        b, products = batched.config.batch_size, []
        weights = [s for _, _, s in batched.layout.values() if len(s) == 2]
        for i, (n_out, n_in) in enumerate(weights):
            x, w, gy, bias = (
                rand(k, b, n_in),
                rand(k, n_out, n_in),
                rand(k, b, n_out),
                rand(k, n_out),
            )
            products.append(functools.partial(grouped_product, "addmm", bias, x, w.transpose(1, 2)))
            products.append(functools.partial(grouped_product, "mm", gy.transpose(1, 2), x))
            if i > 0:
                products.append(functools.partial(grouped_product, "mm", gy, w))
        grads, lrs = 1e-3 * rand(*batched.weights.shape), np.full(k, batched.config.base_lr)
        everyone = np.arange(k)
        parts = {
            "products": sum(_median_ms(f, repeats) for f in products),
            "adamw": _median_ms(lambda: batched.optimizer.step(grads, lrs, everyone), repeats),
            "evaluation": _median_ms(batched.evaluate, max(3, repeats // 10)) / eval_every,
        }
    floor = sum(parts.values())
    return {
        "floor_ms_per_step": floor,
        "floor_parts_ms": parts,
        "ceiling_steps_per_second": 1e3 * k / floor,
    }


# the matrix products among the ATen ops a profile records
PRODUCT_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")


def step_profile(
    env_id: str, k: int, options: dict, steps: int = 100, repeats: int = 5
) -> dict[str, Any]:
    """Where an optimizer step's time goes: one single trainee's, and K batched models'.

    Both are built as ``env_id`` builds them (with ``options``) and warmed up. Their
    ``train_step`` at the base LR is timed, interleaved, ``repeats`` times ``steps``
    steps (median ms per step: ``wall_ms``), then ``steps`` more of each are profiled
    (``torch.profiler``): ``kernel_ms``, the time inside ATen ops (their self time), of
    which ``products_ms`` in the matrix products (``PRODUCT_OPS``) and
    ``other_kernels_ms`` in the rest (AdamW, batch gathering, activations, loss, norms,
    clipping); ``outside_kernels_ms`` is the wall time less the kernels (Python,
    dispatch, the autograd engine). Profiling slows the steps it records, so the kernel
    times are upper bounds. ``speedup`` is ``k x`` the single's wall time over the
    batched one's; ``ceiling_speedup`` the same over the batched step's kernel time
    alone: the ratio were everything outside its kernels free. On a CPU only (on a GPU
    the kernels run asynchronously: this would time their launches). Also the
    machine's ``gemm_gflops`` (:func:`gemm_gflops`), for the products' rates.
    """
    from torch.profiler import ProfilerActivity, profile

    from trainees.factory import make_trainee

    with _batched_vec_env(env_id, k, options) as inner:
        batched = inner.trainee
        single = make_trainee(batched.name, **batched.options)
        single.reset(0)
        lr = batched.config.base_lr
        lrs = np.full(k, lr)
        fns: dict[str, Callable[[], object]] = {
            "single": lambda: single.train_step(lr),
            "batched": lambda: batched.train_step(lrs),
        }
        for fn in fns.values():
            for _ in range(steps // 4):  # warm-up: allocator, exactness probes
                fn()
        walls: dict[str, list[float]] = {name: [] for name in fns}
        for _ in range(repeats):
            for name, fn in fns.items():
                walls[name].append(_median_ms(fn, steps))
        out: dict[str, Any] = {"k": k, "steps": steps, "repeats": repeats}
        for name, fn in fns.items():
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(steps):
                    fn()
            events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
            kernel = sum(e.self_cpu_time_total for e in events) / steps / 1e3
            products = (
                sum(e.self_cpu_time_total for e in events if e.key in PRODUCT_OPS) / steps / 1e3
            )
            wall = statistics.median(walls[name])
            out[name] = {
                "wall_ms": wall,
                "all_wall_ms": walls[name],
                "kernel_ms": kernel,
                "products_ms": products,
                "other_kernels_ms": kernel - products,
                "outside_kernels_ms": wall - kernel,
            }
    out["gemm_gflops"] = gemm_gflops()
    out["speedup"] = k * out["single"]["wall_ms"] / out["batched"]["wall_ms"]
    out["ceiling_speedup"] = k * out["single"]["wall_ms"] / out["batched"]["kernel_ms"]
    return out


def describe_step_profile(profile: dict[str, Any]) -> str:
    """One line of a :func:`step_profile`: each step's wall and kernel times, the ratios."""
    parts = (
        f"{name}: {profile[name]['wall_ms']:.2f} ms/step, kernels "
        f"{profile[name]['kernel_ms']:.2f} (products {profile[name]['products_ms']:.2f})"
        for name in ("single", "batched")
    )
    return (
        "  ".join(parts) + f"; {profile['k']} x single / batched {profile['speedup']:.2f}, "
        f"at most {profile['ceiling_speedup']:.2f} with nothing outside kernels"
    )


def gemm_gflops(n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of one large float32 matrix product (``n x n`` by ``n x n``, best of
    ``repeats``): about the most this machine's matrix products reach."""
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=gen).to(resolve_device(None)) for _ in range(2))
    best_ms = min(_median_ms(lambda: a @ b, 1) for _ in range(repeats))  # each warmed up
    return 2 * n**3 / (best_ms / 1e3) / 1e9


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


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


def make_vec(method: str, env_id: str, k: int, options: dict) -> VecEnv:
    """K envs of ``env_id`` run by ``method`` (one of ``METHODS``)."""
    if method not in METHODS:
        raise ValueError(f"method={method!r} is invalid; valid: {', '.join(METHODS)}")
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


def memory_per_env(method: str, env_id: str, k: int, options: dict) -> float:
    """MB of resident memory per env after a reset and one step.

    In-process methods are measured in a fresh process (memory this one freed earlier
    would otherwise be reused and hide the cost); SubprocVecEnv by its workers' memory.
    """
    if method == "subproc":
        vec = make_vec(method, env_id, k, options)
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
    vec = make_vec(method, env_id, k, options)
    measure_throughput(vec, 1)
    return (rss_bytes() - before) / k / 2**20


# --- the job behind scripts/bench_vec_env.py -------------------------------------------


def check_vec_args(
    env_ids: Sequence[str],
    methods: Sequence[str],
    optimizer: str | None,
    env_steps: Sequence[int],
) -> None:
    """Raise ValueError (naming the valid values) for what :func:`benchmark_vec_envs` refuses."""
    check_env_ids(*env_ids)
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"--methods {unknown} invalid; valid: {', '.join(METHODS)}")
    if optimizer not in (None, *BATCHED_OPTIMIZERS):
        raise ValueError(
            f"--optimizer {optimizer!r} is invalid; valid: {', '.join(BATCHED_OPTIMIZERS)}"
        )
    if len(env_steps) != len(env_ids):
        raise ValueError(
            f"--env-steps {' '.join(map(str, env_steps))} needs one value per env id "
            f"({len(env_ids)}: {' '.join(env_ids)})"
        )


def measure_id(
    env_id: str,
    env_steps: int,
    *,
    ks: Sequence[int],
    methods: Sequence[str] = METHODS,
    max_subproc_k: int = 8,
    dataset: str = "mnist",
    optimizer: str | None = None,
    repeats: int = 3,
    memory: bool = True,
    floor: bool = True,
    profile: bool = False,
) -> list[dict[str, Any]]:
    """:func:`measure_methods` of one id at every K, one line per row.

    The batched method is left out for an id whose trainee has no batched form, and
    SubprocVecEnv above ``max_subproc_k``. ``dataset`` goes to the MLP id only;
    ``optimizer`` (None: the id's default) to every id.
    """
    options = {"dataset": dataset} if "MLP" in env_id else {}
    if optimizer is not None:
        options["optimizer"] = optimizer
    trainee = gym.spec(env_id).kwargs["trainee"]
    rows = []
    for k in ks:
        chosen = [
            m
            for m in methods
            if not (m == "batched" and trainee not in BATCHED_TRAINEES)
            and not (m == "subproc" and k > max_subproc_k)
        ]
        for row in measure_methods(
            env_id,
            k,
            chosen,
            options,
            env_steps,
            repeats=repeats,
            memory=memory,
            floor=floor,
            profile=profile,
        ):
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


def plot_throughput(
    path: str | Path,
    rows: Sequence[dict[str, Any]],
    env_ids: Sequence[str],
    methods: Sequence[str],
    device: str,
) -> None:
    """Steps/s against K, a line per method (and the batched floor's ceiling), a panel per id."""
    panels = []
    for env_id in env_ids:
        panel = Panel(env_id, "K (envs)", "optimizer steps / s (all envs)", logx=True, logy=True)
        for m in methods:
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
    save_panels(path, panels, title=f"vectorised envs on {device}")


def benchmark_vec_envs(
    env_ids: Sequence[str],
    out: str | Path,
    *,
    env_steps: Sequence[int],
    ks: Sequence[int],
    methods: Sequence[str] = METHODS,
    max_subproc_k: int = 8,
    dataset: str = "mnist",
    optimizer: str | None = None,
    repeats: int = 3,
    memory: bool = True,
    floor: bool = True,
    profile: bool = False,
    record: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """:func:`measure_id` of every id (with its ``env_steps``), with speed-ups; JSON and plot.

    Writes the JSON ``out`` and, beside it, the plot (:func:`plot_throughput`) as PNG
    and CSV. ``record``: the command's arguments, stored as the report's ``args``.

    Returns:
        The report written: ``args``, ``torch``, ``device``, ``threads``, ``cpus``, ``rows``.
    """
    rows = []
    for env_id, steps in zip(env_ids, env_steps, strict=True):
        rows += measure_id(
            env_id,
            steps,
            ks=ks,
            methods=methods,
            max_subproc_k=max_subproc_k,
            dataset=dataset,
            optimizer=optimizer,
            repeats=repeats,
            memory=memory,
            floor=floor,
            profile=profile,
        )
    add_speedups(rows)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    report = {
        "args": dict(record or {}),
        "torch": torch.__version__,
        "device": device,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "rows": rows,
    }
    write_json(out, report)
    plot_throughput(Path(out).with_suffix(".png"), rows, env_ids, methods, device)
    return report
