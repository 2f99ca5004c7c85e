"""The LR range test: the rule, its ramp, its steps charged to the run's budget."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from evaluation.methods import METHODS
from evaluation.range_test import (
    RangeTest,
    pick_lr,
    range_test_steps,
    run_range_test,
    smoothed_losses,
)
from evaluation.runs import RunSpec, execute

QUAD = "LRSchedule-Quadratic-v0"


def test_smoothing_and_the_rule_by_hand():
    # avg_1 = 0.5 -> 0.5 / (1 - 0.5) = 1; avg_2 = 0.25 + 1 = 1.25 -> 1.25 / 0.75
    assert smoothed_losses(np.array([1.0, 2.0]), 0.5) == pytest.approx([1.0, 1.25 / 0.75])
    lrs = np.array([1e-3, 1e-2, 1e-1])
    assert pick_lr(lrs, np.array([3.0, 1.0, 2.0]), 10.0) == pytest.approx(1e-3)
    assert pick_lr(lrs, np.array([3.0, np.nan, 2.0]), 10.0) == pytest.approx(1e-2)
    with pytest.raises(ValueError, match="no finite loss"):
        pick_lr(lrs, np.full(3, np.nan), 10.0)


def test_budget_share():
    assert range_test_steps(2000) == 100 and range_test_steps(256) == 16
    assert range_test_steps(20) == 10  # never more than half the budget
    with pytest.raises(ValueError, match="steps=1 is invalid"):
        RangeTest(1)


def test_the_ramp_stops_when_the_loss_blows_up():
    class Blowup:  # the loss falls until LR 1e-3, then rises tenfold per step
        def __init__(self) -> None:
            self.lrs: list[float] = []

        def train_step(self, lr: float):
            self.lrs.append(lr)
            loss = 1.0 / (1 + len(self.lrs)) if lr < 1e-3 else 10.0 ** len(self.lrs)
            return type("S", (), {"loss": loss, "finite": True})()

    trainee = Blowup()
    test = RangeTest(40, lr_min=1e-6, lr_max=1.0, smoothing=0.0)
    result = run_range_test(trainee, test)
    assert trainee.lrs == pytest.approx(test.lrs()[: result["steps_run"]].tolist())
    assert result["steps_run"] < 40 and result["steps"] == 40  # stopped early, charged in full
    best = int(np.argmin(result["smoothed"]))
    assert trainee.lrs[best] < 1e-3 and result["lr"] == pytest.approx(trainee.lrs[best] / 10)


def test_the_test_is_charged_to_the_budget_and_training_restarts_from_the_initial_weights(
    monkeypatch,
):
    spec = RunSpec(
        "final", QUAD, (("total_steps", 64),), METHODS["range_test_cosine"], None, 10_000
    )
    initial = gym.make(QUAD, total_steps=64)
    initial.reset(seed=10_000)
    weights = [p.detach().clone() for p in initial.unwrapped.trainee.model.parameters()]
    starts = []
    reset = type(initial.unwrapped.trainee).reset

    def spy(self, seed):
        reset(self, seed)
        starts.append(
            (self.config.total_steps, [p.detach().clone() for p in self.model.parameters()])
        )

    monkeypatch.setattr(type(initial.unwrapped.trainee), "reset", spy)
    out = execute(spec)
    assert out["range_test"]["steps"] == 16 and out["steps"] == 48 and out["budget_steps"] == 64
    assert out["base_lr"] == pytest.approx(out["range_test"]["lr"])  # cosine at the pick
    # the test's trainee (64-step env) and the run's (48 steps) start from the same weights
    assert [s for s, _ in starts] == [64, 48]
    for _, ws in starts:
        assert all(torch.equal(a, b) for a, b in zip(ws, weights, strict=True))
