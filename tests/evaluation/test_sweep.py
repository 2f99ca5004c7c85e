"""The LR-sensitivity sweep: seeds, specs, resume, backends, summaries, action bounds."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import pytest

import evaluation.store as store_module
from agents.policy import PolicyConfig, make_policy, save_policy
from common import seeds
from envs.config import EnvConfig
from envs.registration import task_id
from evaluation.backends import LocalBackend, RayBackend
from evaluation.methods import METHODS, Method
from evaluation.reference_lrs import REFERENCE_LRS, reference_lr
from evaluation.runs import RunSpec, execute, policy_options
from evaluation.sweep import (
    Sweep,
    check_action_bounds,
    forgetting_summary,
    pair_differences,
    run_sweep,
    summarize_sweep,
    sweep_from_plan,
)
from experiments.lr_sweep import check_arguments, sweep_job

QUAD = "LRSchedule-Quadratic-v0"
TIMING = ("wall_seconds", "train_seconds", "final_timing")
PLANS = Path(__file__).resolve().parents[2] / "evaluation" / "plans"
TINY = PolicyConfig(features_dim=8, patch_size=8, d_model=8, n_layers=1)


def small(*names: str, **kw) -> Sweep:
    names = names or ("cosine", "prodigy_cosine")
    kw = dict(ks=(-1, 0, 1), final_seeds=(10_000, 10_001), options={"total_steps": 32}) | kw
    return Sweep(QUAD, tuple(METHODS[n] for n in names), 0.01, **kw)


def without_timing(run: dict) -> dict:
    return {k: v for k, v in run.items() if k not in TIMING}


def test_specs_cover_each_lr_method_at_each_k_and_the_others_once():
    sweep = small("cosine", "prodigy_d0_cosine", "prodigy_cosine", "dog")
    specs = sweep.specs()
    assert len(specs) == (2 * 3 + 2) * 2  # 2 LR methods x 3 ks + 2 without, x 2 seeds
    lrs = {(s.method.name, s.base_lr) for s in specs}
    assert {lr for m, lr in lrs if m == "cosine"} == {0.005, 0.01, 0.02}
    assert {lr for m, lr in lrs if m == "prodigy_d0_cosine"} == {0.005, 0.01, 0.02}
    assert {lr for m, lr in lrs if m in ("prodigy_cosine", "dog")} == {1.0}
    assert all(s.phase == "final" and s.seed in seeds.FINAL_EVALUATION for s in specs)


@pytest.mark.parametrize(
    "name", ["demonstrations", "model_selection", "held_out", "baseline_tuning", "rl_training"]
)
def test_a_sweep_never_runs_on_training_or_tuning_seeds(name):
    seed = seeds.RANGES[name][0]
    with pytest.raises(ValueError, match=rf"final seeds \[{seed}\] are invalid"):
        small(final_seeds=(10_000, seed))


def test_the_reference_must_take_an_lr_and_k0_must_be_swept():
    with pytest.raises(ValueError, match="reference='prodigy_cosine' must be a method"):
        small(reference="prodigy_cosine")
    with pytest.raises(ValueError, match=r"ks=\(1, 2\) must be distinct integers including 0"):
        small(ks=(1, 2))


def test_the_swept_lr_of_an_lr_option_method_is_its_d0():
    spec = RunSpec(
        "final", QUAD, (("total_steps", 32),), METHODS["prodigy_d0_cosine"], 0.02, 10_000
    )
    assert spec.env_kwargs() == {
        "total_steps": 32,
        "base_lr": 1.0,
        "optimizer": "prodigy",
        "optimizer_options": {"d0": 0.02},
    }
    env = gym.make(QUAD, **spec.env_kwargs())
    env.reset(seed=0)
    env.step(env.action_space.sample() * 0)  # log multiplier 0: lr = base_lr = 1.0
    group = env.unwrapped.trainee.optimizer.param_groups[0]
    assert group["d0"] == 0.02 and group["lr"] == 1.0
    with pytest.raises(ValueError, match="optimizer 'adamw' has no option 'd0'"):
        Method("bad", schedule="cosine", tune=False, base_lr=1.0, lr_option="d0")


def test_a_resumed_sweep_runs_only_what_is_missing(tmp_path, monkeypatch):
    sweep = small()
    first = run_sweep(sweep, tmp_path, LocalBackend(workers=0), progress=False)
    assert len(first["runs"]) == (3 + 1) * 2 and first["added_after_results"] == []
    victim = first["runs"][2]["key"]
    (tmp_path / "runs" / f"{victim}.json").unlink()  # as if interrupted before this run
    executed = []

    def counting(spec, threads=1):
        executed.append(spec.key)
        return execute(spec, threads)

    monkeypatch.setattr(store_module, "execute", counting)
    again = run_sweep(sweep, tmp_path, LocalBackend(workers=0), progress=False)
    assert executed == [victim]
    assert [without_timing(r) for r in again["runs"]] == [without_timing(r) for r in first["runs"]]
    with pytest.raises(ValueError, match=r"holds another grid \(differs in ks"):
        run_sweep(small(ks=(0, 1)), tmp_path, LocalBackend(workers=0), progress=False)


@pytest.mark.slow
def test_ray_and_local_processes_give_the_same_values(tmp_path):
    pytest.importorskip("ray")
    sweep = small("cosine", "prodigy_d0_cosine", "range_test_cosine", ks=(0, 1))
    local = run_sweep(sweep, tmp_path / "local", LocalBackend(workers=2), progress=False)
    backend = RayBackend(threads=1, num_cpus=2)
    try:
        ray = run_sweep(sweep, tmp_path / "ray", backend, progress=False)
    finally:
        backend.close()
    assert [without_timing(r) for r in local["runs"]] == [without_timing(r) for r in ray["runs"]]
    assert len(ray["runs"]) == (2 * 2 + 1) * 2


def run(method: str, lr: float | None, seed: int, loss: float) -> dict:
    return {
        "method": method,
        "given_lr": lr,
        "seed": seed,
        "test_loss": loss,
        "diverged": False,
        "loss0": 9.0,
    }


def test_summaries_by_hand():
    sweep = small("cosine", "prodigy_cosine", ks=(-1, 0, 1))
    runs = [
        run("cosine", 0.005, 10_000, 1.004),
        run("cosine", 0.005, 10_001, 2.004),
        run("cosine", 0.01, 10_000, 1.0),
        run("cosine", 0.01, 10_001, 2.0),
        run("cosine", 0.02, 10_000, 1.1),
        run("cosine", 0.02, 10_001, 2.1),
        run("prodigy_cosine", 1.0, 10_000, 1.01),
        run("prodigy_cosine", 1.0, 10_001, 2.01),
    ]
    s = summarize_sweep(sweep, runs)
    cos = s["methods"]["cosine"]
    assert [p["delta"]["mean"] for p in cos["points"]] == pytest.approx([0.004, 0.0, 0.1])
    assert cos["widest_within"] == [-1, 0] and cos["worst_delta"]["k"] == 1
    assert cos["worst_delta"]["mean"] == pytest.approx(0.1)
    assert [p["test_loss"]["iqm"] for p in cos["points"]] == pytest.approx([1.504, 1.5, 1.6])
    prodigy = s["methods"]["prodigy_cosine"]  # no LR: one point, +0.01 > 0.005 everywhere
    assert prodigy["widest_within"] == [] and prodigy["worst_delta"]["mean"] == pytest.approx(0.01)
    assert s["n_compared"] == 1


def test_a_diverged_run_scores_its_initial_loss():
    sweep = small("cosine", ks=(0, 1))
    runs = [
        run("cosine", 0.01, 10_000, 1.0),
        run("cosine", 0.01, 10_001, 2.0),
        run("cosine", 0.02, 10_000, 1.0),
        run("cosine", 0.02, 10_001, 2.0) | {"diverged": True},
    ]
    point = summarize_sweep(sweep, runs)["methods"]["cosine"]["points"][1]
    assert point["delta"]["diffs"] == [0.0, 7.0] and point["diverged"] == 1


def test_action_bounds_reach_the_reference_from_every_sweep_point():
    cfg = EnvConfig()
    check = check_action_bounds(cfg.min_lr_mult, cfg.max_lr_mult, range(-3, 4))
    assert check["ok"]
    assert check["ks"][0] == {"k": -3, "needed": 8.0, "room_up": 12.5, "room_down": 8000.0}
    assert not check_action_bounds(1e-3, 10.0, range(-3, 4))["ok"]  # the old maximum: 1.25x


def test_plans_are_valid_sweeps_of_the_reference_lrs():
    for path in sorted(PLANS.glob("*.json")):  # the sensitivity, ranking and tuning-free plans
        plan = json.loads(path.read_text())
        if "suite" in plan:
            continue  # a suite plan: its workloads' reference LRs are evaluation/suite.py's
        sweep = sweep_from_plan(plan | {"policies": []})  # policy files are run outputs
        assert sweep.reference_lr == reference_lr(sweep.env_id).lr, path.name
        assert plan["options"]["total_steps"] == REFERENCE_LRS[sweep.env_id].total_steps
    assert {json.loads(p.read_text())["env_id"] for p in PLANS.glob("lr_sweep_*.json")} == set(
        REFERENCE_LRS
    )
    with pytest.raises(ValueError, match="no reference LR for 'LRSchedule-Nope-v0'"):
        reference_lr("LRSchedule-Nope-v0")


def test_an_observation_twin_reads_its_v0_reference():
    # the -v1 twin runs the same task: same entry; an id that is not a twin is not mapped
    assert reference_lr("LRSchedule-MLP-v1") is REFERENCE_LRS["LRSchedule-MLP-v0"]
    assert task_id("LRSchedule-GPT-v1") == "LRSchedule-GPT-v0"
    assert task_id("LRSchedule-Nope-v1") == "LRSchedule-Nope-v1"
    with pytest.raises(ValueError, match="no reference LR for 'LRSchedule-Quadratic-v0'"):
        reference_lr("LRSchedule-Quadratic-v1")


def test_the_job_writes_tables_plot_and_labels_added_methods(tmp_path):
    plan = {
        "env_id": QUAD,
        "options": {"total_steps": 32},
        "reference_lr": 0.01,
        "ks": [0, 1],
        "final_seeds": [10_000, 10_001],
        "methods": ["cosine", "prodigy_cosine"],
    }
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    out = tmp_path / "out"
    results = sweep_job(
        tmp_path / "plan.json", out, LocalBackend(workers=0), add_methods=("dog",), progress=False
    )
    assert results["added_after_results"] == ["dog"] and results["runs"] == (2 + 1 + 1) * 2
    assert results["preregistered"] == ["cosine", "prodigy_cosine"]  # the plan's
    md = (out / "results.md").read_text()
    assert "| dog (added) |" in md and "k=+1" in md
    assert (out / "plots" / "sweep.png").exists() and (out / "plots" / "sweep.csv").exists()
    rows = (out / "plots" / "sweep.csv").read_text().splitlines()
    assert len(rows) == 1 + 3 * 2 * 3  # header; 3 methods x 2 ks x (IQM, CI low, CI high)


def test_a_plans_policies_run_at_every_swept_lr_and_finished_runs_are_reused(tmp_path):
    env = gym.make(QUAD, total_steps=32)
    policy = make_policy(env.observation_space, env.action_space, TINY, seed=0)
    path = save_policy(policy, tmp_path / "tf.pt", TINY, env=env, gamma=0.99)
    first = {
        "env_id": QUAD,
        "options": {"total_steps": 32},
        "reference_lr": 0.01,
        "ks": [-1, 0],
        "final_seeds": [10_000, 10_001],
        "methods": ["cosine", "prodigy_cosine"],
    }
    (tmp_path / "first.json").write_text(json.dumps(first))
    sweep_job(tmp_path / "first.json", tmp_path / "a", LocalBackend(workers=0), progress=False)
    plan = first | {"policies": [f"tf={path}"]}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    sweep = sweep_from_plan(plan)
    specs = [s for s in sweep.specs() if s.method.name == "tf"]
    assert sorted((s.base_lr, s.seed) for s in specs) == [
        (0.005, 10_000),
        (0.005, 10_001),
        (0.01, 10_000),
        (0.01, 10_001),
    ]
    results = sweep_job(
        tmp_path / "plan.json",
        tmp_path / "b",
        LocalBackend(workers=0),
        reuse=(tmp_path / "a",),
        progress=False,
    )
    assert results["reused_runs"] == {str(tmp_path / "a"): 6}  # cosine 2 ks + prodigy, 2 seeds
    assert results["runs_this_invocation"] == 4 and results["runs"] == 10  # only the policy's
    assert results["preregistered"] == ["cosine", "prodigy_cosine", "tf"]
    runs = json.loads((tmp_path / "b" / "results.json").read_text())
    for r in (json.loads(f.read_text()) for f in (tmp_path / "b" / "runs").glob("*tf-*.json")):
        assert r["base_lr"] == r["given_lr"]  # the swept LR is the policy's base LR
    versus = runs["summary"]["policies_vs_lr_free"]["tf"]["prodigy_cosine"]
    assert [v["k"] for v in versus] == [-1, 0] and all(v["n"] == 2 for v in versus)
    tf = {
        json.loads(f.read_text())["seed"]: json.loads(f.read_text())
        for f in (tmp_path / "b" / "runs").glob("*tf-*lr0.005__*.json")
    }
    pr = {
        json.loads(f.read_text())["seed"]: json.loads(f.read_text())
        for f in (tmp_path / "b" / "runs").glob("*prodigy_cosine-*.json")
    }
    diffs = [tf[s]["test_loss"] - pr[s]["test_loss"] for s in (10_000, 10_001)]
    assert versus[0]["delta"]["mean"] == pytest.approx(sum(diffs) / 2)
    assert "| tf | prodigy_cosine |" in (tmp_path / "b" / "results.md").read_text()
    with pytest.raises(FileNotFoundError, match="no runs/ folder"):
        sweep_job(
            tmp_path / "plan.json",
            tmp_path / "c",
            LocalBackend(workers=0),
            reuse=(tmp_path / "nothing",),
            progress=False,
        )


def test_forgetting_is_summarised_for_runs_that_report_it():
    sweep = small("cosine", "prodigy_cosine", ks=(0, 1))
    runs = [
        {"method": "cosine", "given_lr": lr, "seed": s, "final_info": {"forgetting": f}}
        for lr, s, f in [(0.01, 10_000, 0.5), (0.01, 10_001, 0.7), (0.02, 10_000, 1.0)]
    ]
    runs.append({"method": "prodigy_cosine", "given_lr": None, "seed": 10_000, "final_info": {}})
    out = forgetting_summary(sweep, runs)
    assert list(out) == ["cosine"]  # prodigy's run reports none
    assert [(r["k"], r["n"]) for r in out["cosine"]] == [(0, 2), (1, 1)]
    assert out["cosine"][0]["forgetting"]["iqm"] == pytest.approx(0.6)  # IQM of two: the mean
    assert out["cosine"][1]["forgetting"]["iqm"] == pytest.approx(1.0)


def test_pair_differences_are_paired_on_seeds_at_every_k():
    sweep = small("cosine", "linear_warmup", "prodigy_cosine", ks=(0, 1))

    def run(method, lr, seed, loss, diverged=False):
        return {
            "method": method,
            "given_lr": lr,
            "seed": seed,
            "test_loss": loss,
            "diverged": diverged,
            "loss0": 9.0,
        }

    runs = [
        run("cosine", 0.01, 10_000, 1.0),
        run("cosine", 0.01, 10_001, 2.0),
        run("cosine", 0.02, 10_000, 3.0),
        run("cosine", 0.02, 10_001, 4.0),
        run("linear_warmup", 0.01, 10_000, 1.5),
        run("linear_warmup", 0.01, 10_001, 1.5),
        run("linear_warmup", 0.02, 10_000, 2.0, diverged=True),  # scored at loss0
        run("prodigy_cosine", None, 10_000, 0.5),
        run("prodigy_cosine", None, 10_001, 1.0),
    ]
    out = pair_differences(sweep, runs, [("linear_warmup", "cosine"), ("cosine", "prodigy_cosine")])
    lw = out["linear_warmup - cosine"]
    assert [(r["k"], r["n"]) for r in lw] == [(0, 2), (1, 1)]  # k=+1: one seed ran both
    assert lw[0]["delta"]["diffs"] == [0.5, -0.5] and lw[0]["delta"]["mean"] == 0.0
    assert lw[1]["delta"]["diffs"] == [6.0]  # 9.0 (diverged) - 3.0
    # a method without an LR enters at every k with its one run per seed
    cp = out["cosine - prodigy_cosine"]
    assert [r["delta"]["diffs"] for r in cp] == [[0.5, 1.0], [2.5, 3.0]]
    summary = summarize_sweep(sweep, runs[:4] + runs[7:], pairs=[("cosine", "prodigy_cosine")])
    assert summary["pairs"]["cosine - prodigy_cosine"][1]["delta"]["mean"] == 2.75


def test_sweep_arguments_are_checked_against_the_plan_before_any_work(tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"methods": ["cosine"], "policies": ["tf=runs/x/policy.pt"]}))
    assert check_arguments(plan, ("dog",), ("tf:cosine", "dog:tf")) == [
        ("tf", "cosine"),
        ("dog", "tf"),
    ]
    with pytest.raises(ValueError, match=r"pair 'tf:nope' is invalid.*cosine, dog, tf"):
        check_arguments(plan, ("dog",), ("tf:nope",))
    with pytest.raises(ValueError, match="pair 'cosine' is invalid"):
        check_arguments(plan, (), ("cosine",))
    with pytest.raises(ValueError, match="not methods"):
        check_arguments(plan, ("nope",))
    with pytest.raises(ValueError, match="is not a file"):
        check_arguments(tmp_path / "missing.json")


def test_a_v1_policy_runs_a_v0_workload_through_v1_signals(tmp_path):
    # the workload names the v0 id; the policy file's features say v1: the run observes
    # v1's signals, so it is the very run of the v1 twin (same trainee, data, seed, result)
    env = gym.make("LRSchedule-Quadratic-v1", total_steps=32)
    policy = make_policy(env.observation_space, env.action_space, TINY, seed=0)
    path = save_policy(policy, tmp_path / "v1.pt", TINY, env=env, gamma=0.99)
    method = Method("v1", kind="policy", policy=str(path), tune=False)
    assert policy_options(method) == {"observation": "v1"}
    assert policy_options(METHODS["cosine"]) == {}
    runs = {
        env_id: execute(RunSpec("final", env_id, (("total_steps", 32),), method, 0.02, 10_000))
        for env_id in (QUAD, "LRSchedule-Quadratic-v1")
    }
    assert runs[QUAD]["test_loss"] == runs["LRSchedule-Quadratic-v1"]["test_loss"]
    assert runs[QUAD]["curve"] == runs["LRSchedule-Quadratic-v1"]["curve"]
    assert runs[QUAD]["policy_env_mismatches"] == [
        "env_id: policy 'LRSchedule-Quadratic-v1', env 'LRSchedule-Quadratic-v0'"
    ]
