"""The held-out suite: its workloads are never trained on, its plans take seed blocks of
their own, its reference LRs are chosen inside their grids, and its job runs, resumes and
scores."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import gymnasium as gym
import pytest

from envs.config import EnvConfig
from evaluation import suite as suite_mod
from evaluation.backends import LocalBackend
from evaluation.seed_blocks import PLANS, block_conflicts, read_plans
from evaluation.suite import (
    SUITE,
    VALIDATION_SUITE,
    TrainingTask,
    Workload,
    check_held_out,
    held_out,
    trainee_identity,
)
from experiments.suite_job import choose_reference, suite_job, tune_workload
from experiments.task_mixture import check_tasks, load_tasks, training_tasks
from experiments.tuningfree_config import TuningFreeConfig

MIXTURES = sorted((Path(__file__).parents[2] / "experiments" / "mixtures").glob("*.json"))


# -- the suite file -------------------------------------------------------------------------
def test_the_suite_has_six_workloads_and_two_new_architectures_apart_from_validation():
    assert len(SUITE) >= 6
    names = [w.name for w in held_out()]
    assert len(set(names)) == len(names)
    assert len({w.trainee for w in SUITE if w.new_architecture}) >= 2
    assert {"resnet18", "lora"} <= {w.trainee for w in SUITE}
    gpt = [w for w in SUITE if w.trainee == "gpt"]
    assert gpt and all(w.kwargs()["total_steps"] >= 1000 for w in gpt)
    test_ids = {w.identity() for w in SUITE}
    assert not test_ids & {w.identity() for w in VALIDATION_SUITE}
    assert all(w.seed_range == "held_out" for w in VALIDATION_SUITE)
    assert all(w.seed_range == "final_evaluation" and w.n_seeds >= 5 for w in SUITE)


def test_every_workload_is_asked_at_the_one_cadence_of_the_policies():
    default = EnvConfig()
    for w in held_out():
        kw = w.kwargs()
        got = (
            kw.get("steps_per_action", default.steps_per_action),
            kw.get("eval_every", default.eval_every),
        )
        assert got == (32, 64), w.name


def test_one_method_over_the_suite_fits_two_hours_on_two_cores():
    from evaluation.suite import method_seconds

    assert method_seconds(SUITE) == pytest.approx(35 * (7.0 + 19.2 + 24.0 + 31.0 + 104.6 + 6.6))
    assert method_seconds(SUITE) / 2 <= 2 * 3600


def test_every_reference_lr_is_its_tables_argmin_inside_the_grid_on_three_seeds():
    for w in held_out():
        lrs = [lr for lr, _, _ in w.tuning]
        best = min(range(len(lrs)), key=lambda i: w.tuning[i][1])
        assert lrs == sorted(lrs) and len(lrs) >= 5, w.name
        assert w.reference_lr == lrs[best] and 0 < best < len(lrs) - 1, w.name
        assert all(n >= 3 for _, _, n in w.tuning), w.name
        assert w.command.startswith("python scripts/tune_suite.py"), w.name


# -- never trained on -----------------------------------------------------------------------
@pytest.mark.parametrize("mixture", MIXTURES, ids=lambda p: p.name)
def test_no_mixture_trains_on_a_held_out_workload(mixture):
    main = TuningFreeConfig()
    check_held_out(training_tasks(load_tasks(mixture), main.env_id, main.options))


def test_a_held_out_workload_or_architecture_is_refused_as_a_training_task():
    gpt = next(w for w in SUITE if w.trainee == "gpt")
    # the same model, data and budget asked at another cadence is the same workload
    other_cadence = dict(gpt.options) | {"steps_per_action": 16, "eval_every": 32}
    with pytest.raises(ValueError, match=f"is held-out workload {gpt.name}"):
        check_held_out([TrainingTask(gpt.env_id, other_cadence, "task x")])
    new = next(w for w in SUITE if w.new_architecture)
    elsewhere = dict(new.options) | {"total_steps": 77}
    with pytest.raises(ValueError, match=f"draws trainee '{new.trainee}', a held-out architecture"):
        check_held_out([TrainingTask(new.env_id, elsewhere)])
    # another budget of a family the training tasks use is not held out
    check_held_out([TrainingTask(gpt.env_id, dict(gpt.options) | {"total_steps": 1000})])


def test_a_recipe_whose_mixture_holds_a_suite_workload_is_refused_before_any_env_is_built():
    from experiments.task_mixture import MixTask

    w = SUITE[0]
    task = MixTask(w.env_id, dict(w.options), reference_lr=1e-3)
    with pytest.raises(ValueError, match=f"task .* is held-out workload {w.name}"):
        check_tasks([task], None, "LRSchedule-MLP-v0", {"dataset": "mnist"}, 1.0)


def test_a_workload_written_with_its_defaults_or_a_device_is_the_same_workload():
    mlp = next(w for w in SUITE if w.trainee == "mlp")
    for extra in ({"batch_size": 64}, {"device": "cpu"}, {"total_steps": 500.0},
                  {"optimizer": "adamw", "base_lr": 0.5}):  # fmt: skip
        with pytest.raises(ValueError, match=f"is held-out workload {mlp.name}"):
            check_held_out([TrainingTask(mlp.env_id, dict(mlp.options) | extra)])
    gpt = next(w for w in SUITE if w.trainee == "gpt")
    preset_spelt_out = dict(gpt.options) | {"n_layer": 4, "n_embd": 128, "n_head": 4}
    with pytest.raises(ValueError, match=f"is held-out workload {gpt.name}"):
        check_held_out([TrainingTask(gpt.env_id, preset_spelt_out)])


def test_a_main_env_on_the_suite_is_refused_like_a_mixture_task():
    w = SUITE[0]
    with pytest.raises(ValueError, match=rf"{w.env_id} .*\(the main env\) is held-out"):
        check_held_out(training_tasks([], w.env_id, dict(w.options)))


def test_bc_and_the_other_training_jobs_refuse_a_held_out_architecture():
    from envs.options import EnvOptions
    from experiments.bc_pipeline import check_bc_args

    with pytest.raises(ValueError, match=r"\(the BC env\) draws trainee 'vit'"):
        check_bc_args("LRSchedule-ViT-v0", ["cosine"], options=EnvOptions(dataset="digits"))


def test_identity_ignores_how_the_policy_is_asked_not_what_is_trained():
    base = {"dataset": "mnist", "total_steps": 500}
    same = trainee_identity("LRSchedule-MLP-v0", base | {"eval_every": 32, "data_dir": "/x"})
    assert same == trainee_identity("LRSchedule-MLP-v0", base)
    assert same != trainee_identity("LRSchedule-MLP-v0", base | {"hidden": 64})
    assert json.loads(same) == {
        "trainee": "mlp",
        "batch_size": 64,
        "dataset": "mnist",
        "hidden": 128,
        "depth": 1,
        "activation": "relu",
        "norm": "none",
        "total_steps": 500,
    }  # the MLP's resolved config, less how it is trained (HOW_OPTIONS)
    # the observation version is how the policy is asked: the same workload
    assert trainee_identity("LRSchedule-MLP-v1", base) == same


# -- seed blocks of suite plans ---------------------------------------------------------------
def suite_plan(seeds, methods=("cosine",), **extra):
    return {
        "suite": "test",
        "version": suite_mod.VERSION,
        "final_seeds": list(seeds),
        "methods": list(methods),
    } | extra


def test_a_suite_plan_shares_no_seeds_with_another_plan_on_any_of_its_workloads():
    w = SUITE[0]
    single = {
        "env_id": w.env_id,
        "options": dict(w.options),
        "final_seeds": [20_003],
        "methods": ["cosine"],
    }
    others = {"one.json": single}
    assert block_conflicts("s.json", suite_plan(range(20_000, 20_005)), others) == [
        "s.json shares final seeds 20003 with one.json on the same workload, and neither "
        "says it re-runs the other"
    ]
    # beyond the workload's n_seeds the seed is not used there
    assert (
        block_conflicts(
            "s.json", suite_plan([20_010, 20_011, 20_012, 20_013, 20_014, 20_003]), others
        )
        == []
    )
    first = {"a.json": suite_plan(range(20_000, 20_005))}
    assert block_conflicts(
        "b.json", suite_plan(range(20_000, 20_005), ("prodigy_cosine",)), first
    ) == [
        "b.json shares final seeds 20000, 20001, 20002, 20003, ... (5) with a.json on the "
        "same workload, and neither says it re-runs the other"
    ]
    rerun = suite_plan(range(20_000, 20_005), rerun_of="a.json")
    assert block_conflicts("b.json", rerun, first) == []


def test_a_suite_plan_keeps_its_versions_workloads_and_a_validation_plan_takes_no_block(
    monkeypatch,
):
    w = SUITE[0]
    single = {"one.json": {"env_id": w.env_id, "options": dict(w.options), "final_seeds": [20_000],
                           "methods": ["cosine"]}}  # fmt: skip
    v1 = suite_plan(range(20_000, 20_005))
    # a version 2 without this workload: the v1 plan still holds its seeds on it
    monkeypatch.setitem(suite_mod.SUITES, 2, {"test": SUITE[1:], "validation": ()})
    monkeypatch.setattr(suite_mod, "VERSION", 2)
    assert len(block_conflicts("s.json", v1, single)) == 1
    v2 = v1 | {"version": 2}
    assert block_conflicts("s.json", v2, single) == []
    validation = {"suite": "validation", "version": 1, "final_seeds": [1000], "methods": ["cosine"]}
    assert block_conflicts("v.json", validation, {"v0.json": validation}) == []


def test_every_committed_plan_and_suite_plan_has_a_block_of_its_own():
    from experiments.suite_job import read_suite_plan

    plans = read_plans()
    suites = [n for n, p in plans.items() if "suite" in p]
    assert suites
    for name in suites:
        read_suite_plan(PLANS / name)  # a valid plan of the current version
    for name, p in plans.items():
        assert block_conflicts(name, p, plans) == [], name


# -- tuning ---------------------------------------------------------------------------------
def run(lr, seed, val, diverged=False):
    return {"given_lr": lr, "seed": seed, "final_val_loss": val, "diverged": diverged, "loss0": 9.0}


def test_the_reference_is_the_lowest_mean_final_validation_loss_and_its_edge_is_flagged():
    runs = [run(1e-3, 0, 1.0), run(1e-3, 1, 2.0), run(2e-3, 0, 1.0), run(2e-3, 1, 1.2)]
    runs += [run(4e-3, 0, 0.1), run(4e-3, 1, None, diverged=True)]  # a divergence scores 9.0
    got = choose_reference(runs)
    assert got["lr"] == 2e-3 and not got["at_edge"]
    assert [t["mean_final_val_loss"] for t in got["table"]] == [1.5, 1.1, pytest.approx(4.55)]
    assert choose_reference(runs[:4])["at_edge"]


class FakeBackend:
    """Runs nothing: a run's final validation loss is (log2(lr / 0.1))^2, minimal at 0.1."""

    threads = 1

    def __init__(self):
        self.ran = []

    def map_unordered(self, fn, specs):
        for s in specs:
            self.ran.append(s)
            val = math.log2(s.base_lr / 0.1) ** 2
            yield {
                "key": s.key,
                "given_lr": s.base_lr,
                "seed": s.seed,
                "final_val_loss": val,
                "diverged": False,
                "loss0": 99.0,
                "final_timing": {"total_train_time": 1.0},
            }


def test_tuning_widens_the_grid_past_the_edge_until_the_best_lr_is_inside(tmp_path):
    w = Workload("q", "LRSchedule-Quadratic-v0", {"total_steps": 64}, None, "a test")
    backend = FakeBackend()
    got = tune_workload(w, tmp_path, backend, guess=0.1 / 16, progress=False)
    assert got["lr"] == pytest.approx(0.1) and not got["at_edge"]
    # -2..2 around 0.1/16 puts the best at the top edge twice: k = 3, then k = 4 (= 0.1)
    # are added, then k = 5 shows 0.1 inside
    assert got["grid"] == pytest.approx([0.1 / 16 * 2.0**k for k in range(-2, 6)])
    assert len(backend.ran) == 3 * 8 and got["tuning_seeds"] == [2000, 2001, 2002]
    again = FakeBackend()
    assert tune_workload(w, tmp_path, again, guess=0.1 / 16, progress=False)["lr"] == got["lr"]
    assert again.ran == []  # resumed: every run was on disk
    down = tune_workload(w, tmp_path / "down", FakeBackend(), guess=0.1 * 8, progress=False)
    assert down["lr"] == pytest.approx(0.1) and down["widened"] == 2
    assert down["grid"] == pytest.approx([0.8 * 2.0**k for k in range(-4, 3)])  # 0.05 .. 3.2


def test_tuning_that_runs_out_of_widenings_says_so_and_lists_only_lrs_it_ran(tmp_path):
    w = Workload("q", "LRSchedule-Quadratic-v0", {"total_steps": 64}, None, "a test")
    backend = FakeBackend()
    got = tune_workload(w, tmp_path, backend, guess=0.1 / 64, max_widen=1, progress=False)
    assert got["at_edge"] and got["widened"] == 1
    assert got["grid"] == pytest.approx([0.1 / 64 * 2.0**k for k in range(-2, 4)])
    assert sorted({s.base_lr for s in backend.ran}) == pytest.approx(got["grid"])


# -- the job --------------------------------------------------------------------------------
TINY = (
    Workload("quad_a", "LRSchedule-Quadratic-v0", {"total_steps": 64, "steps_per_action": 32,
             "eval_every": 64, "window": 64}, 0.05, "a test", ks=(-1, 0, 1), n_seeds=2),
    Workload("quad_b", "LRSchedule-Quadratic-v0", {"total_steps": 96, "steps_per_action": 32,
             "eval_every": 64, "window": 96}, 0.05, "a test", ks=(0, 2), n_seeds=2),
)  # fmt: skip


def test_the_suite_job_runs_resumes_and_scores_every_complete_workload(tmp_path, monkeypatch):
    monkeypatch.setitem(suite_mod.SUITES[1], "test", TINY)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(suite_plan([10_900, 10_901], ("cosine", "prodigy_cosine"))))
    out = tmp_path / "out"
    backend = LocalBackend(workers=1)
    try:
        first = suite_job(plan, out, backend, workloads=["quad_b"], progress=False)
        assert first["complete"] == ["quad_b"] and first["missing"] == ["quad_a"]
        got = suite_job(plan, out, backend, progress=False)
        again = suite_job(plan, out, backend, progress=False)
    finally:
        backend.close()
    assert got["complete"] == ["quad_a", "quad_b"]  # the suite's order (equal costs)
    assert len(again["invocations"]) == 3 and again["score"] == got["score"]
    rows = (out / "rows.csv").read_text().splitlines()
    # cosine at 3 + 2 ks, Prodigy once per workload, 2 seeds each
    assert len(rows) == 1 + 2 * (3 + 2 + 2)
    score = got["score"]
    assert set(score["workloads"]) == {"quad_a", "quad_b"}
    assert score["workloads"]["quad_a"]["cosine"]["delta"][0]["mean"] == 0.0
    assert sorted(score["workloads"]["quad_b"]["cosine"]["delta"]) == [0, 2]
    md = (out / "results.md").read_text()
    assert "| prodigy_cosine |" in md and "mean rank across the 2 workloads" in md.lower()
    for name in ("suite_delta", "suite_rank"):
        assert (out / "plots" / f"{name}.png").stat().st_size > 0
        assert (out / "plots" / f"{name}.csv").exists()
    assert (out / "quad_a" / "results.md").exists()  # each workload's own sweep report
    stored = json.loads((out / "results.json").read_text())["score"]["workloads"]["quad_b"]
    assert [d["k"] for d in stored["cosine"]["delta"]] == [0, 2]  # numbers, not "0", "2"
    assert [d["k"] for d in stored["prodigy_cosine"]["delta"]] == [None]
    plan.write_text(json.dumps(suite_plan([10_900, 10_901], ("cosine",))))  # edited after
    with pytest.raises(ValueError, match=r"holds results of another version of .*plan\.json"):
        suite_job(plan, out, None, progress=False)
    files = [json.loads(f.read_text()) for f in (out / "quad_a" / "runs").glob("*.json")]
    spent = sum(r["wall_seconds"] for r in files if r["method"] == "cosine")
    assert got["run_seconds"]["cosine"]["quad_a"] == pytest.approx(spent)
    assert len(files) == 2 * (3 + 1)


def test_a_suite_plan_for_another_version_or_an_unknown_workload_is_refused(tmp_path, monkeypatch):
    monkeypatch.setitem(suite_mod.SUITES[1], "test", TINY)
    old = tmp_path / "old.json"
    old.write_text(json.dumps(suite_plan([10_900, 10_901]) | {"version": 0}))
    with pytest.raises(
        ValueError, match=f"made for suite v0; evaluation/suite.py is v{suite_mod.VERSION}"
    ):
        suite_job(old, tmp_path / "o", None, progress=False)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(suite_plan([10_900, 10_901], policies=["a=/no/such.pt"])))
    with pytest.raises(ValueError, match=r"the plan's policies \['a=/no/such.pt'\] are no files"):
        suite_job(plan, tmp_path / "o", None, progress=False)
    assert not (tmp_path / "o").exists()
    bad = {
        "unknown keys ['polices']": suite_plan([10_900, 10_901]) | {"polices": []},
        "gives 1 final seeds; the suite needs 2": suite_plan([10_900]),
        "recipe 'r' names ['b'], no policies of the plan (a)": suite_plan(
            [10_900, 10_901], policies=["a=x.pt"], recipes={"r": ["a", "b"]}
        ),
    }
    for message, content in bad.items():
        plan.write_text(json.dumps(content))
        with pytest.raises(ValueError, match=re.escape(message)):
            suite_job(plan, tmp_path / "o", None, progress=False)
    plan.write_text(json.dumps(suite_plan([10_900, 10_901])))
    with pytest.raises(
        ValueError, match=r"\['nope'\] are not workloads of the test suite; valid: quad_a, quad_b"
    ):
        suite_job(plan, tmp_path / "o", None, workloads=["nope"], progress=False)


def test_a_workload_without_a_reference_or_with_too_few_seeds_cannot_be_planned():
    w = dataclasses.replace(TINY[0], reference_lr=None)
    with pytest.raises(ValueError, match="has no reference LR yet"):
        w.plan(final_seeds=[10_900, 10_901], methods=["cosine"])
    with pytest.raises(ValueError, match="needs 2 final seeds; the plan gives 1"):
        TINY[0].plan(final_seeds=[10_900], methods=["cosine"])
    assert gym.spec(TINY[0].env_id)  # the registered env the tiny suite runs on


def test_a_recipe_is_reported_over_every_training_seed_mean_and_worst():
    from experiments.suite_job import recipe_summary

    def m(worst):
        return {"worst": {"mean": worst}}

    score = {
        "workloads": {
            "a": {"s0": m(0.01), "s1": m(0.03), "s2": m(-0.01), "cosine": m(0.2)},
            "b": {"s0": m(0.5), "s1": m(0.1), "s2": m(0.3), "cosine": m(0.0)},
        },
        "mean_rank": {n: {"mean_rank": r} for n, r in
                      {"s0": 1.5, "s1": 2.0, "s2": 3.5, "cosine": 3.0}.items()},
    }  # fmt: skip
    got = recipe_summary(score, {"tf": ["s0", "s1", "s2"]})["tf"]
    assert got["worst_delta"]["a"] == {"mean": pytest.approx(0.01), "worst": 0.03}
    assert got["worst_delta"]["b"] == {"mean": pytest.approx(0.3), "worst": 0.5}
    assert got["mean_rank"] == {"mean": pytest.approx(7 / 3), "worst": 3.5}
    with pytest.raises(ValueError, match=r"recipe 'tf' names \['s3'\], not methods of the plan"):
        recipe_summary(score, {"tf": ["s0", "s3"]})
