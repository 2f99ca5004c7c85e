"""Comparing a policy's training runs with an expert's on the same (held-out) seeds."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np

from envs.rollout import Episode


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


def paired_difference(
    diffs: Sequence[float], *, seed: int = 0, n_boot: int = 10_000, level: float = 0.95
) -> dict:
    """Mean of per-seed paired differences with a percentile bootstrap CI.

    Args:
        diffs: one difference per evaluation seed (method A minus method B, same seed).
        seed: seed of the bootstrap resampling (its own generator).
        n_boot: bootstrap resamples.
        level: confidence level of the interval.

    Returns:
        ``mean``, ``ci_low``, ``ci_high``, ``n`` and the ``diffs`` themselves.
    """
    d = np.asarray(diffs, dtype=np.float64)
    if d.size == 0:
        raise ValueError("no paired differences: evaluate on at least one seed")
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, (n_boot, d.size))].mean(axis=1)
    alpha = (1.0 - level) / 2
    return {
        "mean": float(d.mean()),
        "ci_low": float(np.quantile(means, alpha)),
        "ci_high": float(np.quantile(means, 1.0 - alpha)),
        "n": int(d.size),
        "diffs": d.tolist(),
    }


@contextlib.contextmanager
def _numpy_global_rng(seed: int) -> Iterator[None]:
    """Seed numpy's global RNG for the block and restore its state afterwards.

    rliable's bootstrap draws its indices from ``np.random`` even when given a
    ``random_state``, so this is how its intervals become reproducible without
    disturbing anyone else's draws from the global RNG.
    """
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle half of the sorted scores.

    The same as rliable's ``metrics.aggregate_iqm`` (``scipy.stats.trim_mean(x, 0.25)``),
    without scipy's per-call overhead, which dominates thousands of bootstrap resamples.
    """
    x = np.sort(np.ravel(scores))
    cut = int(0.25 * x.size)
    return float(x[cut : x.size - cut].mean())


def _improvement(x: np.ndarray, y: np.ndarray) -> float:
    """rliable's ``metrics.probability_of_improvement`` for one task: P(X > Y), ties
    counting half (the Mann-Whitney U over ``n·m``), by direct pairwise comparison."""
    x, y = np.ravel(x)[:, None], np.ravel(y)[None, :]
    return float(np.mean((x > y) + 0.5 * (x == y)))


def iqm_interval(
    scores: Sequence[float], *, seed: int = 0, reps: int = 2_000, level: float = 0.95
) -> dict[str, float]:
    """Interquartile mean of per-seed ``scores`` with rliable's stratified bootstrap CI.

    Returns ``iqm``, ``ci_low``, ``ci_high`` and ``n``.
    """
    from rliable import library as rly
    from rliable import metrics

    x = np.asarray(scores, dtype=np.float64).reshape(-1, 1)  # (runs, tasks = 1)
    if x.size == 0 or not np.isfinite(x).all():
        raise ValueError(f"IQM needs finite scores, got {x.ravel().tolist()}")
    with _numpy_global_rng(seed):
        point, interval = rly.get_interval_estimates(
            {"x": x}, lambda s: np.array([metrics.aggregate_iqm(s)]), reps=reps,
            confidence_interval_size=level,
        )  # fmt: skip
    return {
        "iqm": float(point["x"][0]),
        "ci_low": float(interval["x"][0, 0]),
        "ci_high": float(interval["x"][1, 0]),
        "n": int(x.size),
    }


def probability_of_improvement(
    losses: Sequence[float], reference: Sequence[float], *, seed: int = 0, reps: int = 2_000,
    level: float = 0.95,
) -> dict[str, float]:  # fmt: skip
    """rliable's probability that a run of a method has a lower loss than a run of the
    reference (ties count half), with a stratified bootstrap CI.

    Returns ``p``, ``ci_low`` and ``ci_high``.
    """
    from rliable import library as rly

    # rliable compares scores where higher is better: negate the losses
    a = -np.asarray(losses, dtype=np.float64).reshape(-1, 1)
    b = -np.asarray(reference, dtype=np.float64).reshape(-1, 1)
    with _numpy_global_rng(seed):
        point, interval = rly.get_interval_estimates(
            {"x": [a, b]}, _improvement, reps=reps,
            confidence_interval_size=level,
        )  # fmt: skip
    return {
        "p": float(point["x"]),
        "ci_low": float(np.ravel(interval["x"])[0]),
        "ci_high": float(np.ravel(interval["x"])[1]),
    }
