"""benchmarks.throughput: speed-ups over one single env, and one interleaved measurement."""

from __future__ import annotations

import pytest

from benchmarks.throughput import add_speedups, describe_step_profile, measure_methods, step_profile


def test_speedups_are_over_the_single_env_of_the_same_id():
    rows = [
        {"env_id": "A", "method": "single", "k": 1, "steps_per_second": 100.0},
        {
            "env_id": "A",
            "method": "batched",
            "k": 8,
            "steps_per_second": 250.0,
            "ceiling_steps_per_second": 400.0,
        },
        {"env_id": "A", "method": "single", "k": 8, "steps_per_second": 90.0},
        {"env_id": "B", "method": "subproc", "k": 2, "steps_per_second": 30.0},
    ]
    add_speedups(rows)
    assert [r["speedup_vs_single_env"] for r in rows] == [1.0, 2.5, 0.9, None]
    # over the single envs measured beside it, at its own K
    assert [r["speedup_vs_single_same_k"] for r in rows] == [1.0, 250 / 90, 1.0, None]
    assert rows[1]["ceiling_speedup_vs_single_env"] == 4.0
    assert "ceiling_speedup_vs_single_env" not in rows[0]


def test_measure_methods_interleaves_and_reports_the_batched_floor():
    rows = measure_methods(
        "LRSchedule-Quadratic-v0", 2, ["batched", "single"], {}, 1, repeats=2, memory=False
    )
    assert [(r["method"], r["k"], r["optimizer_steps"]) for r in rows] == [
        ("batched", 2, 16),  # 1 env step of 8 optimizer steps, 2 envs
        ("single", 2, 16),
    ]
    for r in rows:
        assert len(r["all_steps_per_second"]) == 2 and r["memory_mb_per_env"] is None
        assert r["steps_per_second"] == pytest.approx(sum(r["all_steps_per_second"]) / 2)
    floor = rows[0]
    assert floor["floor_ms_per_step"] == pytest.approx(sum(floor["floor_parts_ms"].values()))
    assert "floor_ms_per_step" not in rows[1]


def test_step_profile_splits_each_step_into_products_other_kernels_and_the_rest():
    sp = step_profile("LRSchedule-Quadratic-v0", 2, {}, steps=8, repeats=2)
    assert (sp["k"], sp["steps"], sp["repeats"]) == (2, 8, 2)
    for name in ("single", "batched"):
        part = sp[name]
        assert len(part["all_wall_ms"]) == 2
        assert part["wall_ms"] == pytest.approx(sum(part["all_wall_ms"]) / 2)
        # a linear model: its forward and weight-gradient products are recorded
        assert 0 < part["products_ms"] < part["kernel_ms"]
        assert part["products_ms"] + part["other_kernels_ms"] == pytest.approx(part["kernel_ms"])
        assert part["wall_ms"] - part["kernel_ms"] == pytest.approx(part["outside_kernels_ms"])
    single, batched = sp["single"], sp["batched"]
    assert sp["speedup"] == pytest.approx(2 * single["wall_ms"] / batched["wall_ms"])
    assert sp["ceiling_speedup"] == pytest.approx(2 * single["wall_ms"] / batched["kernel_ms"])
    assert sp["gemm_gflops"] > 0


def test_a_step_profile_is_described_in_one_line():
    part = {"wall_ms": 1.25, "kernel_ms": 0.854, "products_ms": 0.27}
    batched = {"wall_ms": 4.4, "kernel_ms": 3.36, "products_ms": 1.48}
    sp = {"k": 8, "single": part, "batched": batched, "speedup": 2.2727, "ceiling_speedup": 2.976}
    assert describe_step_profile(sp) == (
        "single: 1.25 ms/step, kernels 0.85 (products 0.27)  "
        "batched: 4.40 ms/step, kernels 3.36 (products 1.48); "
        "8 x single / batched 2.27, at most 2.98 with nothing outside kernels"
    )
