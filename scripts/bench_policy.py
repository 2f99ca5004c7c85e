"""Inference cost of a saved policy: time per action vs the trainee's compute between actions.

Runs whole episodes of an env driven by the policy and writes a JSON::

    python scripts/bench_policy.py --policy runs/.../policies/bc_cosine.pt --env LRSchedule-GPT-v0
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import gymnasium as gym
import torch

from agents.cli import parse_args
from agents.evaluation import inference_cost
from agents.policy import load_policy
from agents.runs import write_json
from experts.demos import run_episode


@dataclass(frozen=True)
class Args:
    """Measure a policy's inference cost.

    Attributes:
        policy: saved policy file.
        env: registered env id.
        episodes: episodes to run (seeds 0, 1, ...).
        total_steps: optimizer steps per episode (None: the env's default).
        out: JSON file to write.
    """

    policy: str = ""
    env: str = "LRSchedule-GPT-v0"
    episodes: int = 1
    total_steps: int | None = None
    out: str = "runs/bench/policy.json"


def main(args: Args) -> dict:
    """Run the episodes and write the JSON."""
    if not args.policy:
        raise ValueError("--policy is required: a file written by train_bc.py")
    policy = load_policy(args.policy, device="cpu")
    kwargs = {} if args.total_steps is None else {"total_steps": args.total_steps}
    env = gym.make(args.env, **kwargs)
    runs = [run_episode(env, policy, seed) for seed in range(args.episodes)]
    report = {
        "args": asdict(args),
        "torch_threads": torch.get_num_threads(),
        **inference_cost(runs),
    }
    print(
        f"{args.env}: policy {report['policy_ms_per_action']:.2f} ms/action, trainee "
        f"{report['trainee_ms_per_action']:.1f} ms/action, ratio {100 * report['ratio']:.2f} %"
    )
    write_json(args.out, report)
    return report


if __name__ == "__main__":
    main(parse_args(Args))
