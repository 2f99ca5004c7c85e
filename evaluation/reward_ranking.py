"""Does a reward rank runs the way their final test loss does?

An RL agent maximises its return, so the return should order runs as the quantity users
care about does: the final test loss. :class:`PresetReturns` records, during one episode,
the return the episode would have had under every reward preset (``envs.rewards``): it
sees the very inputs the env's own reward sees at each step, and adds each preset's
divergence reward when the run diverged. :func:`reward_ranking` then gives, over a set
of runs (an LR sweep's: many methods, LRs and seeds), each preset's Spearman correlation
between return and **minus** the test loss (a diverged run scored at its initial loss),
so that 1 means "the return orders runs exactly as the test loss does". Pooled over all
runs, and within each seed (the mean over seeds: the ordering of runs that share
their data order and initial weights).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from scipy.stats import spearmanr

from envs.rewards import REWARDS, RewardInputs, divergence_reward, make_reward
from evaluation.report import loss_score


class PresetReturns:
    """Every reward preset's return over the episodes of ``env`` (default weights).

    Wraps the env's own reward function (the env still returns its configured reward);
    :meth:`reset` starts a new episode, :meth:`finish` adds the divergence reward of a
    diverged run and returns ``{preset: return}``.
    """

    def __init__(self, env: gym.Env) -> None:
        self.env = env.unwrapped
        self.fns = {name: make_reward(name) for name in REWARDS}
        self.totals = dict.fromkeys(REWARDS, 0.0)
        own = self.env.reward_fn

        def reward(inputs: RewardInputs) -> float:
            for name, fn in self.fns.items():
                self.totals[name] += float(fn(inputs))
            return own(inputs)

        self._own = own
        self.env.reward_fn = reward

    def reset(self) -> None:
        """Zero the running returns (call before the episode)."""
        self.totals = dict.fromkeys(REWARDS, 0.0)

    def finish(self, final_info: dict[str, Any]) -> dict[str, float]:
        """The episode's return under each preset, given its last ``info``."""
        out = dict(self.totals)
        if final_info.get("diverged", False):
            cfg, total = self.env.config, self.env.trainee.total_steps
            remaining = (total - int(final_info["step"])) / total
            for name in REWARDS:
                out[name] += divergence_reward(
                    name,
                    None,
                    remaining=remaining,
                    margin=cfg.divergence_margin,
                    loss_cap=cfg.reward_loss_cap,
                )
        return out

    def close(self) -> None:
        """Give the env its own reward function back."""
        self.env.reward_fn = self._own


def _rho(x: Sequence[float], y: Sequence[float]) -> float | None:
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    return float(spearmanr(x, y).statistic)


def reward_ranking(runs: Sequence[dict[str, Any]], threshold: float = 0.9) -> dict[str, Any]:
    """Per preset, Spearman's rho between a run's return and minus its test loss.

    Runs without recorded ``returns`` are left out (their count is reported). Returns
    ``{"runs": n, "without_returns": m, "threshold": t, "presets": {name: {"rho_pooled",
    "rho_within_seed_mean", "rho_within_seed_min", "seeds", "meets_threshold"}}}``;
    ``meets_threshold`` asks the pooled and the mean within-seed rho to reach ``threshold``.
    """
    scored = [r for r in runs if r.get("returns")]
    presets: dict[str, Any] = {}
    for name in REWARDS:
        rs = [r for r in scored if name in r["returns"]]
        ret = [float(r["returns"][name]) for r in rs]
        neg_loss = [-loss_score(r) for r in rs]
        within = []
        for seed in sorted({r["seed"] for r in rs}):
            idx = [i for i, r in enumerate(rs) if r["seed"] == seed]
            rho = _rho([ret[i] for i in idx], [neg_loss[i] for i in idx])
            if rho is not None:
                within.append(rho)
        pooled = _rho(ret, neg_loss)
        mean_within = float(np.mean(within)) if within else None
        presets[name] = {
            "rho_pooled": pooled,
            "rho_within_seed_mean": mean_within,
            "rho_within_seed_min": float(np.min(within)) if within else None,
            "seeds": len(within),
            "meets_threshold": bool(
                pooled is not None
                and mean_within is not None
                and pooled >= threshold
                and mean_within >= threshold
            ),
        }
    return {
        "runs": len(scored),
        "without_returns": len(runs) - len(scored),
        "threshold": threshold,
        "presets": presets,
    }


def ranking_markdown(ranking: dict[str, Any]) -> str:
    """The ranking as a markdown table."""

    def f(x: float | None) -> str:
        return "n/a" if x is None else f"{x:+.3f}"

    lines = [
        f"Spearman's rho between each reward preset's episode return and minus the final "
        f"test loss, over {ranking['runs']} runs (pooled) and within each seed "
        f"(mean, min); threshold {ranking['threshold']}.",
        "",
        "| reward | rho pooled | rho within seed (mean) | (min) | meets |",
        "|---|---|---|---|---|",
    ]
    for name, p in ranking["presets"].items():
        lines.append(
            f"| {name} | {f(p['rho_pooled'])} | {f(p['rho_within_seed_mean'])} | "
            f"{f(p['rho_within_seed_min'])} | {'yes' if p['meets_threshold'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"
