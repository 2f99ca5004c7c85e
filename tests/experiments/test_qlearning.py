"""The Q-learning experiment: per-seed summaries, the markdown table, mean curves."""

import numpy as np
import pytest


def test_experiment_summary_and_table():
    from envs.options import EnvOptions
    from experiments.qlearning import markdown_table, mean_se, run_options, summarize

    assert mean_se([1.0, 2.0, 3.0]) == pytest.approx((2.0, 1.0 / np.sqrt(3)))
    runs = [
        {"best_val_loss": 1.0, "final_train_loss": 2.0},
        {"best_val_loss": 3.0, "final_train_loss": 2.0},
    ]
    s = summarize(runs)
    assert s["best_val_loss"]["mean"] == 2.0 and s["best_val_loss"]["se"] == pytest.approx(1.0)
    assert "total_train_time" not in s
    table = markdown_table({"qlearning": s})
    assert "| qlearning | 2 ± 0 | 2 ± 1 | — | — |" in table
    base = EnvOptions(dataset="text8", preset="tiny", total_steps=100)
    kw = run_options(
        {"kind": "qlearning", "reward": "val_improvement", "initial_lr_mult": 0.3},
        base,
        interval=10,
    ).kwargs()
    assert kw == dict(
        dataset="text8",
        preset="tiny",
        total_steps=100,
        steps_per_action=10,
        eval_every=10,
        action_type="discrete",
        initial_lr_mult=0.3,
        reward="val_improvement",
    )
    assert kw["action_type"] == "discrete" and kw["steps_per_action"] == kw["eval_every"] == 10
    assert kw["reward"] == "val_improvement" and kw["initial_lr_mult"] == 0.3


def test_experiment_mean_curves_average_seeds_per_run_type():
    from experiments.qlearning import mean_curves

    rows = [
        {"run": "a", "seed": 0, "step": 16, "lr": 1.0},
        {"run": "a", "seed": 1, "step": 16, "lr": 3.0},
        {"run": "b", "seed": 0, "step": 32, "lr": 5.0},
        {"run": "a", "seed": 0, "step": 8, "lr": 4.0},
    ]
    assert mean_curves(rows, "lr") == {"a": ([8, 16], [4.0, 2.0]), "b": ([32], [5.0])}
