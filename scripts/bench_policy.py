"""Inference cost of a saved policy: time per action vs the trainee's compute between actions.

Runs whole episodes of an env driven by the policy (by default the env it was trained
on) and writes a JSON::

    python scripts/bench_policy.py --policy runs/.../policies/bc_cosine.pt
    python scripts/bench_policy.py --policy .../bc_cosine.pt --env LRSchedule-GPT-v0 --allow-mismatch
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Annotated

import gymnasium as gym
import torch
import tyro

from agents.policy import load_policy, read_policy_file
from common.cli import parse
from common.files import write_json
from envs.options import EnvOptions, check_env_ids
from envs.rollout import run_episode
from envs.signature import make_from_signature
from evaluation.compare import inference_cost


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


def make_env(args: Args) -> gym.Env:
    """The policy's own env, or ``args.env``, with ``args.options`` on top."""
    if args.env is None:
        return make_from_signature(read_policy_file(args.policy).env, args.options)
    return args.options.make(args.env)


def main(args: Args) -> dict:
    """Run the episodes and write the JSON."""
    env = make_env(args)
    policy = load_policy(args.policy, env, allow_mismatch=args.allow_mismatch, device="cpu")
    runs = [run_episode(env, policy, seed) for seed in range(args.episodes)]
    report = {
        "args": asdict(args),
        "torch_threads": torch.get_num_threads(),
        **inference_cost(runs),
    }
    print(
        f"{env.spec.id}: policy {report['policy_ms_per_action']:.2f} ms/action, trainee "
        f"{report['trainee_ms_per_action']:.1f} ms/action, ratio {100 * report['ratio']:.2f} %"
    )
    write_json(args.out, report)
    return report


if __name__ == "__main__":
    main(parse(Args))
