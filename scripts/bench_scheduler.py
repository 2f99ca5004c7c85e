"""Cost of the drop-in LearnedLRScheduler per optimizer step, as a fraction of the trainee's.

Trains each trainee for four whole runs in a plain PyTorch loop
(``benchmarks.overhead.benchmark_scheduler``): one driven by the scheduler (a policy file,
or by default a freshly built transformer policy of the default size: inference costs
the same trained or not), whose ``observe(loss, max_norm=...)`` also clips, one with
``clip_grad_norm_`` and a cosine ``LambdaLR``, and both again without clipping. Reports
the scheduler's calls per step (gross) and that minus the calls they replace (net), and
writes a JSON::

    python scripts/bench_scheduler.py                       # GPT-tiny and the MLP
    python scripts/bench_scheduler.py --policy runs/.../policies/bc_cosine.pt
    python scripts/bench_scheduler.py --env LRSchedule-MLP-v0 --dataset digits
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Annotated

import tyro

from benchmarks.overhead import benchmark_scheduler
from common.cli import parse
from envs.options import EnvOptions, check_env_ids

EnvIds = Annotated[tuple[str, ...], tyro.conf.arg(aliases=("--envs", "--env-ids"))]


@dataclass(frozen=True)
class Args:
    """Benchmark the scheduler's overhead.

    Attributes:
        env: registered ids whose trainees are measured.
        options: env options (None keeps each id's default).
        policy: a policy file (None: a fresh default-size policy per env).
        out: JSON file to write.
    """

    env: EnvIds = ("LRSchedule-GPT-v0", "LRSchedule-MLP-v0")
    options: Annotated[EnvOptions, tyro.conf.OmitArgPrefixes] = field(default_factory=EnvOptions)
    policy: str | None = None
    out: str = "runs/bench/scheduler.json"

    def __post_init__(self) -> None:
        check_env_ids(*self.env)


def main(args: Args) -> dict:
    """Measure each id and write the JSON."""
    report = benchmark_scheduler(
        args.env, args.out, options=args.options, policy=args.policy, record=asdict(args)
    )
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main(parse(Args))
