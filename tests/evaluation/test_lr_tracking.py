"""The LR error and correction slope, computed by hand on made-up runs."""

from __future__ import annotations

import json

import pytest

from evaluation.lr_tracking import lr_errors, mean_lr, write_lr_tracking

REF = 0.01


def run(method: str, given_lr: float | None, lrs: list[float], seed: int = 0, **extra) -> dict:
    """A run record: one action of 10 optimizer steps per LR (``steps`` overrides)."""
    steps = extra.pop("steps", [10 * (i + 1) for i in range(len(lrs))])
    record = {"key": f"{method}-{given_lr}-{seed}", "method": method, "given_lr": given_lr}
    return (
        record | {"seed": seed, "optimizer": "adamw", "curve": {"lr": lrs, "step": steps}} | extra
    )


def runs() -> list[dict]:
    return [
        # tuned cosine (k = 0): mean LR 0.005 on both seeds
        run("cosine", REF, [0.01, 0.005, 0.0], 0),
        run("cosine", REF, [0.01, 0.005, 0.0], 1),
        run("cosine", 2 * REF, [0.02, 0.01, 0.0], 0),  # k = 1: error 1
        # a policy: from k = -1 it trains at mean 0.005 and 0.0025 (errors 0, -1), from
        # k = +1 at mean 0.01 (error 1) on both seeds
        run("policy", REF / 2, [0.005] * 4, 0),
        run("policy", REF / 2, [0.0025] * 4, 1),
        run("policy", 2 * REF, [0.01] * 4, 0),
        run("policy", 2 * REF, [0.01] * 4, 1),
        # an LR-free optimizer's runs (given LR 1, its curve a multiplier): not tracked
        run("prodigy_cosine", 1.0, [1.0, 0.5, 0.0], optimizer="prodigy"),
        # a method without a base LR (the range test): no k
        run("range_test_cosine", None, [0.003, 0.001]),
        # a method at one k only: no slope, left out unless named
        run("constant", REF, [0.01, 0.01]),
    ]


def test_errors_medians_and_slope_by_hand():
    result = lr_errors(runs(), REF)
    assert result["calibration_mean_lr"] == pytest.approx(0.005)
    assert set(result["methods"]) == {"cosine", "policy"}
    cosine = result["methods"]["cosine"]
    assert cosine["slope"] == pytest.approx(1.0)
    policy = result["methods"]["policy"]
    low, high = policy["by_k"]
    assert (low["k"], low["n"]) == (-1, 2)
    assert [low[x] for x in ("median", "low", "high")] == pytest.approx([-0.5, -1.0, 0.0])
    assert high["k"] == 1 and high["median"] == pytest.approx(1.0)
    # least squares over the four runs: points (-1, 0), (-1, -1), (1, 1), (1, 1)
    assert policy["slope"] == pytest.approx((1.0 - (-0.5)) / 2)
    # named, the one-k method has its error (mean LR 0.01: +1) and no slope
    constant = lr_errors(runs(), REF, methods=["constant"])["methods"]["constant"]
    assert constant["slope"] is None and constant["by_k"][0]["median"] == pytest.approx(1.0)


def test_the_mean_lr_weights_each_action_by_its_steps():
    assert mean_lr(runs()[0]) == pytest.approx(0.005)
    # a budget of 25 steps at 10 a action: the last action holds its LR for 5 steps
    short_end = run("cosine", REF, [0.01, 0.01, 0.04], steps=[10, 20, 25])
    assert mean_lr(short_end) == pytest.approx((0.1 + 0.1 + 0.2) / 25)
    with pytest.raises(ValueError, match="has no LR curve"):
        mean_lr({"key": "x", "curve": {"lr": [], "step": []}})
    with pytest.raises(ValueError, match=r"curve.step=\[10, 10\] does not rise"):
        mean_lr(run("cosine", REF, [0.01, 0.01], steps=[10, 10]))


def test_bad_runs_are_clear_errors():
    with pytest.raises(ValueError, match=r"given_lr=0.015 is not 0.01 · 2\^k"):
        lr_errors([*runs(), run("policy", 0.015, [0.01])], REF)
    with pytest.raises(ValueError, match="calibration='cosine' has no run at k = 0"):
        lr_errors(runs()[2:], REF)
    with pytest.raises(
        ValueError, match="'wsd' has no tracked runs; valid: constant, cosine, policy"
    ):
        lr_errors(runs(), REF, methods=["wsd"])


def test_the_report_files(tmp_path):
    result = {"w": lr_errors(runs(), REF)}
    png = write_lr_tracking(tmp_path, result)
    assert png == tmp_path / "plots" / "lr_tracking.png" and png.exists()
    assert (tmp_path / "plots" / "lr_tracking.csv").exists()  # the plot's data
    assert json.loads((tmp_path / "lr_tracking.json").read_text()) == json.loads(json.dumps(result))
    lines = (tmp_path / "lr_tracking.csv").read_text().splitlines()
    assert lines[0].split(",")[:4] == ["workload", "method", "slope", "k"]
    assert len(lines) == 1 + 2 + 2  # cosine at k = 0, 1; the policy at k = -1, 1
