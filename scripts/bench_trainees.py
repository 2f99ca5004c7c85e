"""Benchmark the trainees: milliseconds per optimizer step, and tokens/s for the GPT presets.

The measurements are ``benchmarks.trainee_speed``'s. Writes a JSON (default
``runs/bench/trainees.json``)::

    python scripts/bench_trainees.py            # MNIST and tiny Shakespeare via $LRGYM_DATA_DIR
    python scripts/bench_trainees.py --trainees quadratic mlp --dataset digits --timed-steps 5
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated

import tyro

from benchmarks.trainee_speed import BenchName, benchmark_trainees, check_benchmarks
from common.cli import parse
from trainees.image import ImageDatasetName


@dataclass(frozen=True)
class Args:
    """Benchmark the trainees.

    Attributes:
        trainees: which benchmarks to run (quadratic, mlp, resnet18, gpt-tiny, gpt-small;
            lora-gpt and lora-smollm2, the LoRA trainee on each base, need the llm extra).
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
        check_benchmarks(self.trainees)


def main(args: Args) -> dict:
    """Run the benchmarks and write the JSON."""
    report = benchmark_trainees(
        args.trainees,
        args.out,
        dataset=args.dataset,
        timed_steps=args.timed_steps,
        warmup=args.warmup,
        slow_steps=args.slow_steps,
        gen_tokens=args.gen_tokens,
        record=asdict(args),
    )
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main(parse(Args))
