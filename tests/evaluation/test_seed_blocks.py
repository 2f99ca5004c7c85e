"""Final-seed blocks: a plan never takes seeds another plan took on the same workload."""

from __future__ import annotations

import json

import pytest

from evaluation.seed_blocks import LEGACY_PLANS, PLANS, block_conflicts, check_block, read_plans
from experiments.lr_sweep import sweep_job

MLP = {"env_id": "LRSchedule-MLP-v0", "options": {"total_steps": 2000}}


def plan(seeds, methods=("cosine",), **extra):
    return MLP | {"final_seeds": list(seeds), "methods": list(methods)} | extra


def test_every_committed_plan_has_a_block_of_its_own():
    plans = read_plans()
    assert LEGACY_PLANS <= set(plans)  # the list names files that exist
    for name, p in plans.items():
        assert block_conflicts(name, p, plans) == [], name


def test_a_shared_block_is_refused_unless_a_declared_rerun_of_the_same_methods():
    first = plan(range(10_000, 10_010), policies=["a=x.pt"])
    others = {"first.json": first}
    assert block_conflicts("second.json", plan(range(10_010, 10_020)), others) == []
    assert (
        block_conflicts(
            "second.json", MLP | {"options": {"total_steps": 1000}, "final_seeds": [10_005]}, others
        )
        == []
    )
    assert block_conflicts("second.json", plan([10_009, 10_003]), others) == [
        "second.json shares final seeds 10003, 10009 with first.json on the same "
        "workload, and neither says it re-runs the other"
    ]
    # an option left at the env's registered default is the same workload as given
    default = MLP | {"options": {"total_steps": 2000, "dataset": "mnist"}}
    assert block_conflicts("third.json", default | {"final_seeds": [10_000]}, others) != []
    rerun = plan(range(10_000, 10_010), policies=["a=x.pt"], rerun_of="first.json")
    assert block_conflicts("second.json", rerun, others) == []
    changed = plan(range(10_000, 10_010), ("cosine", "prodigy_cosine"), rerun_of="first.json")
    assert block_conflicts("second.json", changed, others)[0].endswith(
        "and its re-run has other methods"
    )


def test_legacy_plans_may_overlap_each_other_but_not_a_new_plan():
    a, b = sorted(LEGACY_PLANS)[:2]
    assert block_conflicts(a, plan([10_000]), {b: plan([10_000])}) == []
    assert block_conflicts("new.json", plan([10_000]), {a: plan([10_000])}) != []
    assert block_conflicts(a, plan([10_000]), {"new.json": plan([10_000])}) != []


def test_a_sweep_on_a_taken_block_is_refused_before_any_work(tmp_path):
    taken = json.loads((PLANS / "lr_sweep_mlp_mnist.json").read_text())
    # the same name outside the plans folder is no legacy plan
    path = tmp_path / "lr_sweep_mlp_mnist.json"
    path.write_text(json.dumps(taken | {"methods": ["cosine", "dog"]}))
    with pytest.raises(
        ValueError,
        match=r"shares final seeds 10000, 10001, 10002, 10003, \.\.\. \(10\) with "
        r"lr_sweep_mlp_mnist\.json .*Take a fresh block",
    ):
        sweep_job(path, tmp_path / "out", backend=None, progress=False)
    assert not (tmp_path / "out").exists()
    fresh = tmp_path / "fresh.json"
    fresh.write_text(json.dumps(taken | {"final_seeds": [10_500]}))
    check_block(fresh)  # a fresh block passes
