"""The benchmark jobs behind the bench_* scripts: their reports, and the arguments they refuse."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.env_overhead import benchmark_envs
from benchmarks.policy import inference_cost
from benchmarks.throughput import check_vec_args
from benchmarks.trainee_speed import BENCHMARKS, benchmark_trainees, check_benchmarks
from envs.rollout import Episode


def episode(n: int, policy_seconds: float, train_seconds: float) -> Episode:
    infos = [{"lr": 0.1} for _ in range(n)]
    infos[-1]["total_train_time"] = train_seconds
    return Episode(
        0, np.zeros((n + 1, 1)), np.zeros((n, 1)), np.zeros(n), infos, policy_seconds=policy_seconds
    )


def test_inference_cost_is_per_action_over_all_episodes():
    cost = inference_cost([episode(4, 0.004, 2.0), episode(6, 0.006, 3.0)])
    assert cost["actions"] == 10
    assert cost["policy_ms_per_action"] == pytest.approx(1.0)
    assert cost["trainee_ms_per_action"] == pytest.approx(500.0)
    assert cost["ratio"] == pytest.approx(0.002)


def test_refused_arguments_name_the_valid_values():
    with pytest.raises(ValueError, match="needs one value per env id"):
        check_vec_args(["LRSchedule-Quadratic-v0"], ["batched"], None, [1, 2])
    with pytest.raises(ValueError, match="valid: adamw, adamw_fused"):
        check_vec_args(["LRSchedule-Quadratic-v0"], ["batched"], "sgd", [1])
    check_vec_args(["LRSchedule-Quadratic-v0"], ["batched", "single"], "adamw", [1])
    with pytest.raises(ValueError, match=r"'gpt'.*gpt-tiny"):
        check_benchmarks(["gpt"])
    check_benchmarks(BENCHMARKS)


def test_env_and_trainee_benchmarks_write_their_reports(tmp_path, capsys):
    ids = ["LRSchedule-Quadratic-v0", "LRSchedule-Quadratic-v1"]
    report = benchmark_envs(ids, tmp_path / "env.json", repeats=3, total_steps=16, record={"r": 3})
    assert json.loads((tmp_path / "env.json").read_text()) == report
    assert report["args"] == {"r": 3} and list(report["results"]) == ids
    for r in report["results"].values():  # every id measured in every repeat, both sides
        assert r["total_steps"] == 16
        assert len(r["env_seconds"]) == len(r["plain_seconds"]) == 3
        assert r["env_median_s"] == sorted(r["env_seconds"])[1]
        assert r["ratio"] == pytest.approx(r["env_median_s"] / r["plain_median_s"])
        pairs = sorted(e / p for e, p in zip(r["env_seconds"], r["plain_seconds"], strict=True))
        assert r["ratio_paired_median"] == pairs[1]
        cpu = sorted(
            e / p for e, p in zip(r["env_cpu_seconds"], r["plain_cpu_seconds"], strict=True)
        )
        assert len(cpu) == 3 and r["cpu_ratio_paired_median"] == cpu[1]
    report = benchmark_trainees(["quadratic"], tmp_path / "t.json", timed_steps=2, warmup=1)
    assert report["results"]["quadratic"]["timed_steps"] == 2 and report["args"] == {}
    assert set(report["machine"]) == {"device", "cpu", "torch", "threads"}
    out = capsys.readouterr().out
    assert "LRSchedule-Quadratic-v0" in out and "ratio" in out and "quadratic" in out
