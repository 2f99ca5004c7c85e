"""Benchmark the trainees: milliseconds per optimizer step, and tokens/s for the GPT presets.

Writes a JSON (default ``runs/bench/trainees.json``)::

    python scripts/bench_trainees.py            # MNIST and tiny Shakespeare via $LRGYM_DATA_DIR
    python scripts/bench_trainees.py --trainees quadratic mlp --dataset digits --timed-steps 5
"""

from __future__ import annotations

import platform
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Annotated, Literal

import torch
import tyro

from common.cli import parse
from common.files import write_json
from trainees import GPT_PRESETS, TRAINEES, GPTTrainee, TorchTrainee, make_trainee
from trainees.image import ImageDatasetName

# a trainee, or the GPT in one of its presets (tests keep this equal to BENCHMARKS)
BenchName = Literal["quadratic", "mlp", "resnet18", "gpt-tiny", "gpt-small"]
BENCHMARKS: tuple[str, ...] = tuple(t for t in TRAINEES if t != "gpt") + tuple(
    f"gpt-{p}" for p in GPT_PRESETS
)


@dataclass(frozen=True)
class Args:
    """Benchmark the trainees.

    Attributes:
        trainees: which benchmarks to run (quadratic, mlp, resnet18, gpt-tiny, gpt-small).
        dataset: dataset of the image trainees (mnist | digits).
        timed_steps: timed optimizer steps per trainee.
        warmup: untimed steps first.
        slow_steps: timed steps for trainees slower than 1 s/step (gpt-small on a CPU).
        gen_tokens: tokens generated for the inference-speed figure of the GPT presets.
        out: JSON file to write.
    """

    trainees: tuple[BenchName, ...] = ("quadratic", "mlp", "resnet18", "gpt-tiny", "gpt-small")
    dataset: Annotated[ImageDatasetName, tyro.conf.arg(aliases=("--image-dataset",))] = "mnist"
    timed_steps: Annotated[int, tyro.conf.arg(aliases=("--steps",))] = 20
    warmup: int = 3
    slow_steps: int = 3
    gen_tokens: int = 100
    out: str = "runs/bench/trainees.json"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.trainees) - set(BENCHMARKS))
        if unknown:
            raise ValueError(f"--trainees {unknown} invalid; valid: {', '.join(BENCHMARKS)}")


def build(name: str, dataset: str) -> TorchTrainee:
    """The trainee a benchmark name stands for."""
    if name.startswith("gpt-"):
        return make_trainee("gpt", preset=name.removeprefix("gpt-"))
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


def bench(name: str, args: Args) -> dict:
    """Time one trainee."""
    trainee = build(name, args.dataset)
    trainee.reset(0)
    warm = time_steps(trainee, args.warmup)
    n = args.slow_steps if statistics.median(warm) > 1.0 else args.timed_steps
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
        trainee.generate(args.gen_tokens)
        result["inference_tokens_per_second"] = args.gen_tokens / (time.perf_counter() - t0)
    return result


def main(args: Args) -> dict:
    """Run the benchmarks and write the JSON."""
    device = build("quadratic", args.dataset).device
    report = {
        "args": asdict(args),
        "machine": {
            "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
            "cpu": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
        "results": {},
    }
    for name in args.trainees:
        report["results"][name] = r = bench(name, args)
        extra = "".join(
            f"  {k} {r[k]:,.0f}"
            for k in ("train_tokens_per_second", "inference_tokens_per_second")
            if k in r
        )
        print(f"{name:10s} {r['ms_per_step_median']:9.1f} ms/step{extra}", flush=True)
    write_json(args.out, report)
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main(parse(Args))
