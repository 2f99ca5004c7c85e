"""How fast the trainees train: milliseconds per optimizer step, tokens/s for the GPT presets.

:func:`benchmark_trainees` is the job behind ``scripts/bench_trainees.py``; a benchmark
name (``BENCHMARKS``) is a trainee, the GPT in one of its presets, or the LoRA trainee on
one of its bases (``lora-gpt``, ``lora-smollm2``: the ``llm`` extra; the GPT base is
pretrained on first use, the SmolLM2 base needs its GGUF file).
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch

from common.files import write_json
from trainees import GPT_PRESETS, TRAINEES, GPTTrainee, TorchTrainee, make_trainee
from trainees.lora import BASES as LORA_BASES

# a trainee, or the GPT in one of its presets (tests keep this equal to BENCHMARKS)
BenchName = Literal[
    "quadratic", "mlp", "resnet18", "gpt-tiny", "gpt-small", "lora-gpt", "lora-smollm2"
]
BENCHMARKS: tuple[str, ...] = (
    tuple(t for t in TRAINEES if t != "gpt")
    + tuple(f"gpt-{p}" for p in GPT_PRESETS)
    + tuple(f"lora-{b}" for b in LORA_BASES)
)


def check_benchmarks(names: Iterable[str]) -> None:
    """Raise ValueError naming the valid benchmarks if a name is not one of them."""
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        raise ValueError(f"--trainees {unknown} invalid; valid: {', '.join(BENCHMARKS)}")


def build(name: str, dataset: str) -> TorchTrainee:
    """The trainee a benchmark name stands for."""
    if name.startswith("gpt-"):
        return make_trainee("gpt", preset=name.removeprefix("gpt-"))
    if name.startswith("lora-"):
        return make_trainee("lora", base=name.removeprefix("lora-"))
    if name in ("mlp", "resnet18"):
        return make_trainee(name, dataset=dataset)
    return make_trainee(name)


def time_steps(trainee: TorchTrainee, n: int) -> list[float]:
    """Wall seconds of each of ``n`` optimizer steps at the base LR."""
    times = []
    for _ in range(n):
        if trainee.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        trainee.train_step(trainee.base_lr)  # returns after the host sync on the loss
        times.append(time.perf_counter() - t0)
    return times


def trainee_speed(
    name: str,
    *,
    dataset: str = "mnist",
    timed_steps: int = 20,
    warmup: int = 3,
    slow_steps: int = 3,
    gen_tokens: int = 100,
) -> dict[str, Any]:
    """Time one benchmark: ``warmup`` untimed steps, then ``timed_steps`` timed ones.

    Args:
        name: one of ``BENCHMARKS``.
        dataset: the dataset of the image trainees.
        timed_steps: timed optimizer steps.
        warmup: untimed steps first.
        slow_steps: timed steps instead for a trainee slower than 1 s/step.
        gen_tokens: tokens generated for the inference-speed figure of the GPT presets.
    """
    trainee = build(name, dataset)
    trainee.reset(0)
    warm = time_steps(trainee, warmup)
    n = slow_steps if statistics.median(warm) > 1.0 else timed_steps
    times = time_steps(trainee, n)
    t0 = time.perf_counter()
    trainee.evaluate()
    result = {
        "ms_per_step_median": 1e3 * statistics.median(times),
        "ms_per_step_mean": 1e3 * statistics.fmean(times),
        "timed_steps": n,
        "ms_per_evaluate": 1e3 * (time.perf_counter() - t0),
        "parameters": sum(p.numel() for p in trainee.model.parameters()),
        "batch_size": trainee.config.batch_size,
    }
    if isinstance(trainee, GPTTrainee):
        tokens = trainee.config.batch_size * trainee.config.block_size
        result["train_tokens_per_second"] = tokens / statistics.median(times)
        t0 = time.perf_counter()
        trainee.generate(gen_tokens)
        result["inference_tokens_per_second"] = gen_tokens / (time.perf_counter() - t0)
    return result


def machine(device: torch.device) -> dict[str, Any]:
    """The device, CPU, torch version and torch threads the figures were measured with."""
    return {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def benchmark_trainees(
    names: Sequence[str],
    out: str | Path,
    *,
    dataset: str = "mnist",
    timed_steps: int = 20,
    warmup: int = 3,
    slow_steps: int = 3,
    gen_tokens: int = 100,
    record: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """:func:`trainee_speed` of every benchmark, one line each, into the JSON ``out``.

    Args:
        names: benchmarks (``BENCHMARKS``).
        out: the JSON file to write.
        dataset, timed_steps, warmup, slow_steps, gen_tokens: as :func:`trainee_speed`.
        record: the command's arguments, stored as the report's ``args``.

    Returns:
        The report written: ``args``, ``machine`` and ``results`` by name.
    """
    device = build("quadratic", dataset).device
    report = {"args": dict(record or {}), "machine": machine(device), "results": {}}
    for name in names:
        report["results"][name] = r = trainee_speed(
            name,
            dataset=dataset,
            timed_steps=timed_steps,
            warmup=warmup,
            slow_steps=slow_steps,
            gen_tokens=gen_tokens,
        )
        extra = "".join(
            f"  {k} {r[k]:,.0f}"
            for k in ("train_tokens_per_second", "inference_tokens_per_second")
            if k in r
        )
        print(f"{name:10s} {r['ms_per_step_median']:9.1f} ms/step{extra}", flush=True)
    write_json(out, report)
    return report
