"""What a saved policy costs at inference: its time per action vs the trainee's between actions.

:func:`inference_cost` measures it on finished episodes; :func:`benchmark_policy` (the job
behind ``scripts/bench_policy.py``) runs whole episodes of an env driven by the policy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

from agents.policy import load_policy, read_policy_file
from common.files import write_json
from envs.options import EnvOptions
from envs.rollout import Episode, run_episode
from envs.signature import make_from_signature


def inference_cost(runs: Sequence[Episode]) -> dict:
    """Policy time per action vs the trainee's compute between actions."""
    actions = sum(len(e.lrs) for e in runs)
    policy_s = sum(e.policy_seconds for e in runs)
    train_s = sum(float(e.final["total_train_time"]) for e in runs)
    return {
        "actions": actions,
        "policy_ms_per_action": 1e3 * policy_s / actions,
        "trainee_ms_per_action": 1e3 * train_s / actions,
        "ratio": policy_s / train_s,
    }


def policy_env(
    policy: str | Path, env_id: str | None = None, options: EnvOptions | None = None
) -> gym.Env:
    """The env a policy file records (or ``env_id``), with ``options`` on top."""
    options = options or EnvOptions()
    if env_id is None:
        return make_from_signature(read_policy_file(policy).env, options)
    return options.make(env_id)


def benchmark_policy(
    policy: str | Path,
    out: str | Path,
    *,
    env_id: str | None = None,
    options: EnvOptions | None = None,
    allow_mismatch: bool = False,
    episodes: int = 1,
    record: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run ``episodes`` episodes (seeds 0, 1, ...) driven by ``policy``; print and write its cost.

    Args:
        policy: a saved policy file.
        out: the JSON file to write.
        env_id: run on this registered id (None: the env the policy was trained on).
        options: env options on top of that env (None keeps its values).
        allow_mismatch: run the policy on an env other than its own (transfer).
        episodes: episodes to run.
        record: the command's arguments, stored as the report's ``args``.

    Returns:
        The report written: ``args``, ``torch_threads`` and :func:`inference_cost`'s figures.
    """
    env = policy_env(policy, env_id, options)
    net = load_policy(policy, env, allow_mismatch=allow_mismatch, device="cpu")
    runs = [run_episode(env, net, seed) for seed in range(episodes)]
    report = {
        "args": dict(record or {}),
        "torch_threads": torch.get_num_threads(),
        **inference_cost(runs),
    }
    print(
        f"{env.spec.id}: policy {report['policy_ms_per_action']:.2f} ms/action, trainee "
        f"{report['trainee_ms_per_action']:.1f} ms/action, ratio {100 * report['ratio']:.2f} %"
    )
    write_json(out, report)
    return report
