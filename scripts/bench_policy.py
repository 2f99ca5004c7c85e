"""Inference cost of a saved policy: time per action vs the trainee's compute between actions.

Runs whole episodes of an env driven by the policy (by default the env it was trained
on; ``benchmarks.policy.benchmark_policy``) and writes a JSON::

    python scripts/bench_policy.py --policy runs/.../policies/bc_cosine.pt
    python scripts/bench_policy.py --policy .../bc_cosine.pt --env LRSchedule-GPT-v0 --allow-mismatch
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Annotated

import tyro

from benchmarks.policy import benchmark_policy
from common.cli import parse
from envs.options import EnvOptions, check_env_ids


@dataclass(frozen=True)
class Args:
    """Measure a policy's inference cost.

    Attributes:
        policy: saved policy file.
        env: registered env id (None: the env the policy was trained on).
        options: env options on top of the policy's env (None keeps its value).
        allow_mismatch: run the policy on an env other than its own (transfer).
        episodes: episodes to run (seeds 0, 1, ...).
        out: JSON file to write.
    """

    policy: str = ""
    env: str | None = None
    options: Annotated[EnvOptions, tyro.conf.OmitArgPrefixes] = field(default_factory=EnvOptions)
    allow_mismatch: bool = False
    episodes: int = 1
    out: str = "runs/bench/policy.json"

    def __post_init__(self) -> None:
        if not self.policy:
            raise ValueError("--policy is required: a file written by train_bc.py")
        if self.env is not None:
            check_env_ids(self.env)


def main(args: Args) -> dict:
    """Run the episodes and write the JSON."""
    report = benchmark_policy(
        args.policy,
        args.out,
        env_id=args.env,
        options=args.options,
        allow_mismatch=args.allow_mismatch,
        episodes=args.episodes,
        record=asdict(args),
    )
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main(parse(Args))
