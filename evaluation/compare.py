"""Comparing a policy's episodes with others on the same seeds.

BC (policy against its expert: LR agreement, best validation loss), PPO (final and best
against the BC start and the expert, paired on held-out seeds) and the harness read
their comparisons here; the statistics live in ``common.stats``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from agents.policy import load_policy
from common.seeds import take
from common.stats import paired_difference
from envs.rollout import Episode, run_episodes
from experts.policy import SchedulePolicy
from experts.schedules import make_schedule


def mean_abs_log_lr_ratio(policy: Episode, expert: Episode) -> float:
    """Mean over actions of ``|log(lr_policy / lr_expert)|`` for two runs of equal length."""
    n = min(len(policy.lrs), len(expert.lrs))
    return float(np.mean(np.abs(np.log(policy.lrs[:n] / expert.lrs[:n]))))


def compare(policy_runs: Sequence[Episode], expert_runs: Sequence[Episode]) -> dict:
    """LR agreement and best validation loss of a policy vs an expert, seed by seed.

    ``within_spread`` is True when the policy's mean best validation loss differs from the
    expert's by at most the expert's seed-to-seed standard deviation.
    """
    if [e.seed for e in policy_runs] != [e.seed for e in expert_runs]:
        raise ValueError("policy and expert runs must use the same seeds in the same order")
    ratios = [mean_abs_log_lr_ratio(p, e) for p, e in zip(policy_runs, expert_runs, strict=True)]
    pol = np.array([e.best_val_loss for e in policy_runs])
    exp = np.array([e.best_val_loss for e in expert_runs])
    exp_std = float(exp.std(ddof=1)) if len(exp) > 1 else 0.0
    return {
        "seeds": [e.seed for e in policy_runs],
        "mean_abs_log_lr_ratio": float(np.mean(ratios)),
        "mean_abs_log_lr_ratio_per_seed": ratios,
        "policy_best_val_loss": pol.tolist(),
        "expert_best_val_loss": exp.tolist(),
        "policy_best_val_mean": float(pol.mean()),
        "expert_best_val_mean": float(exp.mean()),
        "expert_best_val_std": exp_std,
        "expert_best_val_range": [float(exp.min()), float(exp.max())],
        "within_spread": bool(abs(pol.mean() - exp.mean()) <= exp_std),
    }


def summarize_episodes(runs: list[Episode]) -> dict[str, Any]:
    """Mean return and best validation loss of evaluation episodes, with the per-seed values."""
    returns = [r.episode_return for r in runs]
    best = [r.best_val_loss for r in runs]
    return {
        "mean_return": float(np.mean(returns)),
        "mean_best_val_loss": float(np.mean(best)),
        "returns": returns,
        "best_val_losses": best,
        "diverged": int(sum(r.diverged for r in runs)),
    }


def compare_to_start(
    init: str | Path, folder: Path, env: gym.Env, n_seeds: int, expert: str | None
) -> dict[str, Any]:
    """PPO (final and best) against its BC start and the expert on held-out seeds.

    Per-seed differences are paired (same seed, same data order and initial weights);
    their mean comes with a 95% bootstrap CI.
    """
    seeds = take("held_out", n_seeds)
    policies: dict[str, Any] = {
        "ppo_final": folder / "policies" / "ppo_final.pt",
        "ppo_best": folder / "policies" / "ppo_best.pt",
        "bc": Path(init),
    }
    runs = {
        name: run_episodes(env, load_policy(path, env, allow_mismatch=True, device="cpu"), seeds)
        for name, path in policies.items()
    }
    if expert is not None:
        runs[f"expert_{expert}"] = run_episodes(
            env, SchedulePolicy(make_schedule(expert), env.action_space), seeds
        )
    out: dict[str, Any] = {
        "seeds": seeds,
        "runs": {k: summarize_episodes(v) for k, v in runs.items()},
    }
    out["lr_schedules"] = {
        k: {
            "steps": v[0].steps.tolist(),
            "lrs": v[0].lrs.tolist(),
            "val_losses": v[0].val_losses.tolist(),
        }
        for k, v in runs.items()
    }
    out["paired"] = {}
    for ppo in ("ppo_final", "ppo_best"):
        for other in [k for k in runs if not k.startswith("ppo")]:
            for key in ("returns", "best_val_losses"):
                a, b = np.array(out["runs"][ppo][key]), np.array(out["runs"][other][key])
                out["paired"][f"{ppo}_minus_{other}_{key}"] = paired_difference(a - b, seed=0)
        base = runs["bc"]
        out[f"{ppo}_lr_drift_from_bc"] = float(
            np.mean(
                [
                    np.mean(np.abs(np.log(p.lrs / q.lrs)))
                    for p, q in zip(runs[ppo], base, strict=True)
                ]
            )
        )
    return out
