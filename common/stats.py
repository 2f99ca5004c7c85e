"""Statistics of every comparison: paired differences with bootstrap CIs, IQM, probability of improvement (rliable), and sign-flip tests with Holm's correction."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np


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
            {"x": x},
            lambda s: np.array([metrics.aggregate_iqm(s)]),
            reps=reps,
            confidence_interval_size=level,
        )
    return {
        "iqm": float(point["x"][0]),
        "ci_low": float(interval["x"][0, 0]),
        "ci_high": float(interval["x"][1, 0]),
        "n": int(x.size),
    }


def probability_of_improvement(
    losses: Sequence[float],
    reference: Sequence[float],
    *,
    seed: int = 0,
    reps: int = 2_000,
    level: float = 0.95,
) -> dict[str, float]:
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
            {"x": [a, b]},
            _improvement,
            reps=reps,
            confidence_interval_size=level,
        )
    return {
        "p": float(point["x"]),
        "ci_low": float(np.ravel(interval["x"])[0]),
        "ci_high": float(np.ravel(interval["x"])[1]),
    }


# -- many methods against one reference -----------------------------------------------------
ALPHA = 0.05  # the family-wise error rate a verdict is held to


MAX_EXACT = 16  # up to this many differences, all 2**n sign assignments are enumerated


VERDICT_TEST = (
    "two-sided sign-flip permutation test of the mean per-seed paired difference "
    f"(exact up to {MAX_EXACT} seeds), Holm-adjusted over the methods compared"
)


def sign_flip_pvalue(
    diffs: Sequence[float], *, seed: int = 0, n_resamples: int = 20_000, max_exact: int = MAX_EXACT
) -> float:
    """Two-sided p-value that paired per-seed differences have mean 0: a sign-flip
    permutation test.

    Under the null hypothesis the two methods are exchangeable on each seed, so each
    difference is as likely to be negated. The p-value is the fraction of sign
    assignments whose ``|mean|`` reaches the observed one: exact (all ``2**n``
    assignments) for ``n <= max_exact`` differences, else ``(1 + hits) / (1 +
    n_resamples)`` over ``n_resamples`` random assignments drawn from ``seed``. Five
    differences of one sign give the smallest exact value, ``2 / 32 = 0.0625``.
    """
    d = np.asarray(diffs, dtype=np.float64)
    if d.size == 0 or not np.isfinite(d).all():
        raise ValueError(f"a sign-flip test needs finite differences, got {d.tolist()}")
    exact = d.size <= max_exact
    if exact:  # every assignment once, the observed one included
        signs = 1.0 - 2.0 * ((np.arange(2**d.size)[:, None] >> np.arange(d.size)) & 1)
    else:
        signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(n_resamples, d.size))
    # a sum equal to the observed one up to rounding reaches it
    hits = int((np.abs(signs @ d) >= abs(d.sum()) - 1e-12 * np.abs(d).sum()).sum())
    return hits / len(signs) if exact else (1 + hits) / (1 + n_resamples)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni step-down adjusted p-values, in the order given.

    The ``i``-th smallest of ``m`` p-values is multiplied by ``m - i + 1``, kept at least
    as large as the adjusted values below it, and capped at 1; rejecting where the
    adjusted value is below ``alpha`` holds the family-wise error rate at ``alpha``.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    steps = np.maximum.accumulate((p.size - np.arange(p.size)) * p[order])
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(steps, 1.0)
    return adjusted.tolist()


def verdicts(
    diffs: dict[str, Sequence[float]], *, alpha: float = ALPHA, seed: int = 0
) -> dict[str, dict[str, float | str]]:
    """Every method against one reference, corrected for comparing them all.

    Args:
        diffs: per method, its per-seed losses minus the reference's on the same seeds.
        alpha: the family-wise error rate.
        seed: seed of the sign-flip test's random assignments (used past ``MAX_EXACT`` seeds).

    Returns:
        Per method: ``p_value`` (:func:`sign_flip_pvalue`), ``p_holm`` (:func:`holm` over
        all the methods given) and ``verdict``: ``better`` (lower loss) or ``worse`` when
        ``p_holm < alpha``, else ``not resolved``.
    """
    names = list(diffs)
    p = [sign_flip_pvalue(diffs[m], seed=seed) for m in names]
    out: dict[str, dict[str, float | str]] = {}
    for m, p_m, p_adj in zip(names, p, holm(p), strict=True):
        mean = float(np.mean(diffs[m]))
        resolved = p_adj < alpha and mean != 0.0
        verdict = ("better" if mean < 0 else "worse") if resolved else "not resolved"
        out[m] = {"p_value": p_m, "p_holm": p_adj, "verdict": verdict}
    return out
