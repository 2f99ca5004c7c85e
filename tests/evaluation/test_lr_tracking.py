"""The LR error and correction slope, computed by hand on made-up runs."""

from __future__ import annotations

import json

import pytest

from evaluation.lr_tracking import lr_errors, mean_lr, write_lr_tracking

REF = 0.01


def run(method: str, given_lr: float, lrs: list[float], seed: int = 0) -> dict:
    return {"key": f"{method}-{given_lr}-{seed}", "method": method, "given_lr": given_lr} | {
        "seed": seed,
        "curve": {"lr": lrs},
    }


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
        run("prodigy_cosine", 1.0, [1.0, 0.5, 0.0]),
    ]


def test_errors_medians_and_slope_by_hand():
    result = lr_errors(runs(), REF)
    assert result["calibration_mean_lr"] == pytest.approx(0.005)
    assert set(result["methods"]) == {"cosine", "policy"}  # prodigy's curve is no LR
    cosine = result["methods"]["cosine"]
    assert cosine["slope"] == pytest.approx(1.0)
    policy = result["methods"]["policy"]
    low, high = policy["by_k"]
    assert low == {"k": -1, "n": 2, "median": pytest.approx(-0.5), "low": -1.0, "high": 0.0}
    assert high["k"] == 1 and high["median"] == pytest.approx(1.0)
    # least squares over the four runs: points (-1, 0), (-1, -1), (1, 1), (1, 1)
    assert policy["slope"] == pytest.approx((1.0 - (-0.5)) / 2)
    assert mean_lr(runs()[0]) == pytest.approx(0.005)


def test_bad_runs_are_clear_errors():
    with pytest.raises(ValueError, match=r"given_lr=0.015 is not 0.01 · 2\^k"):
        lr_errors([*runs(), run("policy", 0.015, [0.01])], REF)
    with pytest.raises(ValueError, match="calibration='cosine' has no run at k = 0"):
        lr_errors(runs()[2:], REF)
    with pytest.raises(ValueError, match="method 'wsd' has no runs"):
        lr_errors(runs(), REF, methods=["wsd"])
    with pytest.raises(ValueError, match="has no LR curve"):
        mean_lr({"key": "x", "curve": {"lr": []}})


def test_the_report_files(tmp_path):
    result = {"w": lr_errors(runs(), REF)}
    png = write_lr_tracking(tmp_path, result)
    assert png == tmp_path / "plots" / "lr_tracking.png" and png.exists()
    assert (tmp_path / "plots" / "lr_tracking.csv").exists()  # the plot's data
    assert json.loads((tmp_path / "lr_tracking.json").read_text()) == json.loads(json.dumps(result))
    lines = (tmp_path / "lr_tracking.csv").read_text().splitlines()
    assert lines[0].split(",")[:4] == ["workload", "method", "slope", "k"]
    assert len(lines) == 1 + 2 + 2  # cosine at k = 0, 1; the policy at k = -1, 1
