"""The evaluation harness: seeds, the test split, tuning, resuming, backends, statistics."""

from __future__ import annotations

import json
import re
from typing import get_args

import gymnasium as gym
import numpy as np
import pytest

import evaluation.store as store_module
from agents.policy import PolicyConfig, make_policy, save_policy
from common import seeds
from common.stats import holm, sign_flip_pvalue
from envs.rollout import run_episode
from evaluation.backends import LocalBackend, RayBackend, make_backend
from evaluation.grid import Grid, choose_base_lrs, final_specs, tuning_specs
from evaluation.harness import run_grid
from evaluation.methods import METHODS, Method, MethodName, policy_method
from evaluation.report import loss_score, markdown, steps_to_target, summarize, write_report
from evaluation.runs import TIMING_INFO, RunSpec, execute
from evaluation.store import added_after_results, new_run_folder, open_folder
from experts.policy import SchedulePolicy
from experts.schedules import Cosine
from trainees.quadratic import QuadraticTrainee

QUAD = "LRSchedule-Quadratic-v0"
OPTS = {"total_steps": 64}  # 8 actions of 8 steps, evaluations every 16 steps
TIMING = ("wall_seconds", "train_seconds", "final_timing")


def small_grid(*methods: Method, **kw) -> Grid:
    kw = dict(final_seeds=(10_000, 10_001), tuning_seeds=(2_000,), lr_factors=(0.5, 1.0)) | kw
    methods = methods or (METHODS["cosine"], METHODS["constant"])
    return Grid(envs=(QUAD,), methods=methods, options=OPTS, **kw)


def without_timing(run: dict) -> dict:
    return {k: v for k, v in run.items() if k not in TIMING}


# -- seeds ------------------------------------------------------------------------------------
def test_tuning_and_final_seeds_never_overlap():
    grid = Grid(envs=(QUAD,), methods=tuple(METHODS.values()), options=OPTS)
    tune = {s.seed for s in tuning_specs(grid, {QUAD: 0.05})}
    final = {s.seed for s in final_specs(grid, {}, tuned=False)}
    final |= {s.seed for s in final_specs(grid, {(QUAD, m): 0.05 for m in METHODS}, tuned=True)}
    assert tune == {2000, 2001, 2002} and final == set(range(10_000, 10_010))
    training = set(seeds.DEMONSTRATIONS) | set(seeds.MODEL_SELECTION) | set(seeds.RL_TRAINING)
    assert not tune & final and not (tune | final) & training
    with pytest.raises(ValueError, match=r"seeds \[2001\] are outside the final_evaluation range"):
        small_grid(final_seeds=(10_000, 2_001))
    with pytest.raises(ValueError, match=r"seeds \[10000\] are outside the baseline_tuning range"):
        small_grid(tuning_seeds=(10_000,))


# -- one run ----------------------------------------------------------------------------------
def test_test_split_is_read_once_after_the_episode(monkeypatch):
    reads = []
    original = QuadraticTrainee.test_metrics

    def spy(self):
        reads.append((self.steps_done, self.total_steps))
        return original(self)

    monkeypatch.setattr(QuadraticTrainee, "test_metrics", spy)
    env = gym.make(QUAD, **OPTS)
    run_episode(env, SchedulePolicy(Cosine(), env.action_space), seed=3)
    assert reads == []  # observations and rewards of a whole episode never read it
    spec = RunSpec("final", QUAD, tuple(OPTS.items()), METHODS["cosine"], None, 10_000)
    run = execute(spec)
    assert reads == [(64, 64)]
    assert run["test_split"] == "test" and run["test_loss"] > 0
    assert run["steps"] == 64 and run["curve"]["step"] == [8 * i for i in range(1, 9)]
    assert run["base_lr"] == 0.05 and not run["diverged"]
    assert run["final_val_loss"] == run["curve"]["val_loss"][-1]
    assert run["best_val_loss"] == min(run["curve"]["val_loss"])


def test_runs_are_reproducible_and_apply_the_method():
    cos = RunSpec("final", QUAD, tuple(OPTS.items()), METHODS["cosine"], 0.02, 10_000)
    a, b = execute(cos), execute(cos)
    assert without_timing(a) == without_timing(b)
    # the clock's numbers of the last info are apart from the reproducible ones
    assert (
        set(a["final_timing"]) == {"total_train_time"} and a["final_timing"]["total_train_time"] > 0
    )
    assert not TIMING_INFO & set(a["final_info"]) and a["final_info"]["step"] == 64.0
    # cosine from 0.02 down to a tenth of it, as the schedule says at each action's start
    expected = [0.02 * Cosine()(8 * i / 64) for i in range(8)]
    np.testing.assert_allclose(a["curve"]["lr"], expected, rtol=1e-5)
    sf = execute(RunSpec("final", QUAD, tuple(OPTS.items()), METHODS["schedulefree"], 0.02, 10_000))
    assert sf["optimizer"] == "schedulefree" and sf["test_loss"] != a["test_loss"]


def test_a_policy_file_runs_and_records_a_transfer(tmp_path):
    env = gym.make(QUAD, **OPTS)
    policy = make_policy(env.observation_space, env.action_space, PolicyConfig(), seed=0)
    path = save_policy(policy, tmp_path / "p.pt", PolicyConfig(), env=env.unwrapped, gamma=0.99)
    method = policy_method(f"rand={path}")
    same = execute(RunSpec("final", QUAD, tuple(OPTS.items()), method, None, 10_000))
    assert same["method"] == "rand" and same["policy_env_mismatches"] == []
    other = {**OPTS, "eval_every": 32}
    moved = execute(RunSpec("final", QUAD, tuple(other.items()), method, None, 10_000))
    assert moved["policy_env_mismatches"] == ["eval_every: policy 16, env 32"]
    with pytest.raises(ValueError, match="does not exist"):
        policy_method("nothing.pt")
    # a policy trained at another base LR runs at that LR: it sets multipliers of it
    env = gym.make(QUAD, **OPTS, base_lr=0.02)
    path = save_policy(policy, tmp_path / "q.pt", PolicyConfig(), env=env.unwrapped, gamma=0.99)
    method = policy_method(str(path))
    assert method.name == "q" and method.base_lr == 0.02
    grid = Grid(envs=(QUAD,), methods=(method,), options=OPTS, final_seeds=(10_000,), reference="q")
    (spec,) = final_specs(grid, {}, tuned=False)
    assert execute(spec)["base_lr"] == 0.02


# -- tuning -----------------------------------------------------------------------------------
def fake(method, lr, seed, final_val, *, diverged=False, phase="tune", env=QUAD, **kw):
    return {
        "env_id": env,
        "method": method,
        "base_lr": lr,
        "seed": seed,
        "phase": phase,
        "final_val_loss": final_val,
        "diverged": diverged,
        **kw,
    }


def test_tuning_picks_the_lowest_mean_final_validation_loss():
    grid = small_grid(lr_factors=(0.5, 1.0, 2.0), tuning_seeds=(2000, 2001))
    runs = [
        fake("cosine", 0.025, 2000, 1.0),
        fake("cosine", 0.025, 2001, 0.8),
        fake("cosine", 0.05, 2000, 0.6),
        fake("cosine", 0.05, 2001, 0.8),
        fake("cosine", 0.1, 2000, 0.1),
        fake("cosine", 0.1, 2001, None, diverged=True),
        fake("constant", 0.025, 2000, 0.5),
        fake("constant", 0.025, 2001, 0.5),
        fake("constant", 0.05, 2000, 0.7),
        fake("constant", 0.05, 2001, 0.7),
        fake("constant", 0.1, 2000, 0.9),
        fake("constant", 0.1, 2001, 0.9),
    ]
    chosen = choose_base_lrs(grid, runs)[QUAD]
    assert chosen["cosine"]["base_lr"] == 0.05 and not chosen["cosine"]["at_edge"]
    assert [r["mean_final_val_loss"] for r in chosen["cosine"]["table"]] == [0.9, 0.7, np.inf]
    assert chosen["cosine"]["table"][2]["diverged"] == 1
    assert chosen["constant"]["base_lr"] == 0.025 and chosen["constant"]["at_edge"]


# -- the grid, resumed, on both backends ------------------------------------------------------
def test_a_resumed_grid_skips_finished_runs(tmp_path, monkeypatch):
    grid = small_grid()
    first = run_grid(grid, tmp_path, LocalBackend(workers=0), progress=False)
    # 2 methods x 2 LRs x 1 tuning seed, then 2 methods x 2 final seeds
    assert len(first["tune"]) == 4 and len(first["final"]) == 4
    assert {r["seed"] for r in first["final"]} == {10_000, 10_001}
    victim = first["final"][1]["key"]
    (tmp_path / "runs" / f"{victim}.json").unlink()
    executed = []

    def counting(spec, threads=1):
        executed.append(spec.key)
        return execute(spec, threads)

    monkeypatch.setattr(store_module, "execute", counting)
    again = run_grid(grid, tmp_path, LocalBackend(workers=0), progress=False)
    assert executed == [victim]
    assert [without_timing(r) for r in again["final"]] == [
        without_timing(r) for r in first["final"]
    ]
    executed.clear()  # a method added to the finished grid: only its runs are new
    run_grid(
        small_grid(METHODS["cosine"], METHODS["constant"], METHODS["wsd"]),
        tmp_path,
        LocalBackend(workers=0),
        progress=False,
    )
    assert len(executed) == 4 and all("__wsd-" in k for k in executed)
    with pytest.raises(ValueError, match=r"holds another grid \(differs in lr_factors"):
        open_folder(tmp_path, small_grid(lr_factors=(1.0,)))


def test_a_method_added_after_results_is_labelled(tmp_path):
    first = run_grid(small_grid(), tmp_path, LocalBackend(workers=0), progress=False)
    assert first["added_after_results"] == [] and first["preregistered"] == ["cosine", "constant"]
    grid = small_grid(METHODS["cosine"], METHODS["constant"], METHODS["wsd"])
    for _ in range(2):  # the record of the first invocation is kept, not overwritten
        result = run_grid(grid, tmp_path, LocalBackend(workers=0), progress=False)
        assert result["added_after_results"] == ["wsd"]
    assert set(json.loads((tmp_path / "grid.json").read_text())["preregistered"]) == {
        "cosine",
        "constant",
    }
    out = write_report(tmp_path, grid.to_json(), result)
    rows = {r["method"]: r for r in out["envs"][QUAD]["methods"]}
    assert {m: r["added_after_results"] for m, r in rows.items()} == {
        "cosine": False,
        "constant": False,
        "wsd": True,
    }
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["added_after_results"] == ["wsd"]
    md = (tmp_path / "results.md").read_text()
    assert "| wsd (added) |" in md and "| constant |" in md and "constant (added)" not in md
    bars = (tmp_path / "plots" / f"test_loss_{QUAD}.csv").read_text()
    assert "wsd (added)" in bars and "constant (added)" not in bars
    assert "wsd (added)" in (tmp_path / "plots" / f"curves_{QUAD}.csv").read_text()


def test_methods_set_before_any_result_are_preregistered(tmp_path):
    open_folder(tmp_path, small_grid())  # nothing ran: the next invocation may change them
    grid = small_grid(METHODS["cosine"], METHODS["wsd"])
    open_folder(tmp_path, grid)
    assert added_after_results(tmp_path, grid) == []


def test_reference_must_be_a_method_of_the_grid():
    with pytest.raises(
        ValueError,
        match=r"reference='cosinus' is not a method of the grid; valid: cosine, constant",
    ):
        small_grid(reference="cosinus")


def test_method_names_are_a_literal_of_the_methods():
    assert get_args(MethodName) == tuple(METHODS)


def test_new_run_folders_are_fresh(tmp_path):
    a, b = (new_run_folder(tmp_path / "evaluate", QUAD, "evaluate") for _ in range(2))
    assert a != b and a.is_dir() and b.is_dir() and not any(a.iterdir())
    for path in (a, b):
        assert re.fullmatch(rf"{QUAD}__evaluate__\d+(-\d+)?", path.name)


def test_local_and_ray_backends_give_identical_runs(tmp_path):
    pytest.importorskip("ray")
    grid = small_grid(METHODS["cosine"], METHODS["schedulefree"], METHODS["prodigy_cosine"])
    local = run_grid(grid, tmp_path / "local", LocalBackend(workers=2), progress=False)
    backend = RayBackend(threads=1, num_cpus=2)
    try:
        ray = run_grid(grid, tmp_path / "ray", backend, progress=False)
    finally:
        backend.close()
    for phase in ("tune", "final"):
        assert [without_timing(r) for r in local[phase]] == [without_timing(r) for r in ray[phase]]
    assert local["tuning"] == ray["tuning"]
    assert {r["method"] for r in ray["final"]} == {"cosine", "schedulefree", "prodigy_cosine"}
    assert {r["base_lr"] for r in ray["final"] if r["method"] == "prodigy_cosine"} == {1.0}


def test_bad_backend_and_method_are_named():
    with pytest.raises(ValueError, match=r"backend='slurm' is invalid; valid: local, ray"):
        make_backend("slurm")
    with pytest.raises(ValueError, match=r"schedule='cosinus' is invalid; valid: constant"):
        Method("x", schedule="cosinus")
    with pytest.raises(ValueError, match=r"optimizer='sgd' is invalid; valid: adamw"):
        Method("x", schedule="cosine", optimizer="sgd")


# -- statistics and the report ----------------------------------------------------------------
def final_run(method, seed, loss, *, diverged=False, vals=(2.0, 1.0, 0.5)):
    return {
        "env_id": QUAD,
        "method": method,
        "seed": seed,
        "phase": "final",
        "base_lr": 0.1,
        "optimizer": "adamw",
        "test_loss": None if diverged else loss,
        "loss0": 3.0,
        "diverged": diverged,
        "best_val_loss": min(vals),
        "final_val_loss": vals[-1],
        "wall_seconds": 1.0,
        "test_split": "test",
        "curve": {"step": [10, 20, 30], "lr": [0.1, 0.1, 0.1], "val_loss": list(vals)},
    }


def test_summary_statistics_by_hand():
    ref = [final_run("cosine", s, 1.0 + 0.1 * i) for i, s in enumerate(range(10_000, 10_008))]
    better = [final_run("new", r["seed"], r["test_loss"] - 0.05) for r in ref]
    better[0] = final_run("new", 10_000, None, diverged=True)  # scores loss0 = 3.0
    rows = {r["method"]: r for r in summarize(ref + better, reference="cosine", target=0.9)}
    # IQM of 1.0..1.7: the mean of the middle four, 1.2..1.5
    assert rows["cosine"]["test_loss"]["iqm"] == pytest.approx(1.35)
    assert rows["cosine"]["test_loss"]["ci_low"] <= 1.35 <= rows["cosine"]["test_loss"]["ci_high"]
    delta = rows["new"]["delta_test_loss"]
    assert delta["diffs"] == pytest.approx([2.0] + [-0.05] * 7)
    assert delta["mean"] == pytest.approx((2.0 - 0.35) / 8)
    # new beats cosine unless paired with a lower-loss cosine run: count pairs by hand
    a = [3.0] + [1.0 + 0.1 * i - 0.05 for i in range(1, 8)]
    b = [1.0 + 0.1 * i for i in range(8)]
    p = np.mean([[1.0 if x < y else 0.5 if x == y else 0.0 for y in b] for x in a])
    assert rows["new"]["p_improvement"]["p"] == pytest.approx(p)
    assert rows["new"]["diverged"] == 1 and rows["cosine"]["diverged"] == 0
    assert rows["cosine"]["steps_to_target"] == {"target": 0.9, "reached": 8, "median": 30.0}
    assert loss_score(better[0]) == 3.0 and steps_to_target(ref[0], 2.0) == 10


def test_write_report_files(tmp_path):
    ref = [final_run("cosine", s, 1.0 + 0.01 * s) for s in range(10_000, 10_004)]
    new = [final_run("new", s, 0.9 + 0.01 * s) for s in range(10_000, 10_004)]
    tune = [fake("cosine", 0.1, 2000, 0.7), fake("cosine", 0.1, 2001, 0.5)]
    tuning = {QUAD: {"cosine": {"base_lr": 0.1, "at_edge": False, "table": []}}}
    result = {"final": ref + new, "tune": tune, "tuning": tuning, "base_lrs": {QUAD: 0.05}}
    grid = {"envs": [QUAD], "reference": "cosine"}
    out = write_report(tmp_path, grid, result)
    assert out["envs"][QUAD]["target_val_loss"] == pytest.approx(0.6)  # median of 0.7, 0.5
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["envs"][QUAD]["methods"][1]["delta_test_loss"]["mean"] == pytest.approx(-0.1)
    md = (tmp_path / "results.md").read_text()
    assert "| new | 0.1 |" in md and "-0.1000 [-0.1000, -0.1000]" in md
    # 4 differences of one sign: the exact sign-flip p-value is 2/16, not resolved
    assert saved["envs"][QUAD]["n_compared"] == 1
    new_row = saved["envs"][QUAD]["methods"][1]
    assert (new_row["p_value"], new_row["p_holm"]) == (0.125, 0.125)
    assert (
        new_row["verdict"] == "not resolved" and "verdict" not in saved["envs"][QUAD]["methods"][0]
    )
    assert (
        "1 method compared with cosine on the same 4 seeds; a verdict holds after Holm's "
        "correction at 0.05." in md
    )
    assert "| Holm p | verdict |" in md and "| 0.125 | not resolved |" in md
    assert len((tmp_path / "runs.csv").read_text().splitlines()) == 9
    for name in ("test_loss", "curves"):
        assert (tmp_path / "plots" / f"{name}_{QUAD}.png").stat().st_size > 1000
        assert (tmp_path / "plots" / f"{name}_{QUAD}.csv").exists()


def test_fast_iqm_and_improvement_equal_rliables():
    from rliable import metrics

    from common.stats import _improvement, iqm

    rng = np.random.default_rng(0)
    for n in (1, 3, 8, 10, 13):
        x = rng.normal(size=(n, 1))
        assert iqm(x) == pytest.approx(metrics.aggregate_iqm(x), rel=1e-12)
        y = np.round(rng.normal(size=(n + 2, 1)), 1)
        x = np.round(x, 1)  # ties too
        assert _improvement(x, y) == pytest.approx(
            metrics.probability_of_improvement(x, y), rel=1e-12
        )


# -- many methods against one reference ------------------------------------------------------
def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04, 0.5 times 4, 3, 2, 1: 0.04, 0.09, 0.08 -> 0.09 (monotone), 0.5
    assert holm([0.01, 0.04, 0.03, 0.5]) == [0.04, 0.09, 0.09, 0.5]
    assert holm([0.6, 0.7]) == [1.0, 1.0]  # 1.2 capped at 1, and 0.7 raised to it
    assert holm([0.02]) == [0.02] and holm([]) == []


def test_sign_flip_pvalue_by_hand():
    assert sign_flip_pvalue([0.1, 0.2, 0.3, 0.4, 0.5]) == 2 / 32  # only all + and all -
    assert sign_flip_pvalue([-1.0] * 5) == 2 / 32
    # +-1 +-1 +-2 with observed sum 2: |sum| >= 2 in 6 of the 8 assignments
    assert sign_flip_pvalue([1.0, -1.0, 2.0]) == 6 / 8
    assert sign_flip_pvalue([0.0, 0.0, 0.0]) == 1.0
    # Monte Carlo past max_exact: seeded, near the exact value, never 0
    d = np.random.default_rng(1).normal(0.3, 1.0, size=12)
    mc = sign_flip_pvalue(d, max_exact=0, n_resamples=20_000, seed=3)
    assert mc == sign_flip_pvalue(d, max_exact=0, n_resamples=20_000, seed=3)
    assert mc == pytest.approx(sign_flip_pvalue(d), abs=0.01)
    assert sign_flip_pvalue([1.0] * 20, n_resamples=999) >= 1 / 1000


def test_verdicts_hold_after_holms_correction():
    ref = [final_run("cosine", s, 1.0 + 0.1 * i) for i, s in enumerate(range(10_000, 10_006))]

    def method(name, delta):
        return [final_run(name, r["seed"], r["test_loss"] + delta) for r in ref]

    # one method, 6 lower losses: p = 2/64 < 0.05, better
    rows = {
        r["method"]: r for r in summarize(ref + method("a", -0.05), reference="cosine", target=None)
    }
    assert (rows["a"]["p_value"], rows["a"]["p_holm"], rows["a"]["verdict"]) == (
        2 / 64,
        2 / 64,
        "better",
    )
    # the same method among three of equal p: Holm triples the smallest, not resolved
    runs = ref + method("a", -0.05) + method("b", -0.05) + method("c", 0.2)
    rows = {r["method"]: r for r in summarize(runs, reference="cosine", target=None)}
    assert [rows[m]["p_holm"] for m in "abc"] == [0.09375, 0.09375, 0.09375]
    assert {rows[m]["verdict"] for m in "abc"} == {"not resolved"}
    assert "verdict" not in rows["cosine"]
    md = markdown(list(rows.values()), env=QUAD, reference="cosine")
    assert "3 methods compared with cosine on the same 6 seeds" in md


def test_a_d0_method_is_tuned_over_d0_and_runs_at_the_chosen_d0(tmp_path):
    """prodigy_d0_cosine takes the grid's LRs as Prodigy's d0 (its base LR stays 1.0)."""
    grid = small_grid(METHODS["cosine"], METHODS["prodigy_d0_cosine"], tuning_seeds=(2000,))
    result = run_grid(grid, tmp_path, LocalBackend(workers=0), progress=False)
    tune = [r for r in result["tune"] if r["method"] == "prodigy_d0_cosine"]
    env_lr = result["base_lrs"][QUAD]
    assert sorted(r["given_lr"] for r in tune) == [0.5 * env_lr, env_lr]
    assert {r["base_lr"] for r in tune} == {1.0}
    table = result["tuning"][QUAD]["prodigy_d0_cosine"]["table"]
    assert [row["base_lr"] for row in table] == [0.5 * env_lr, env_lr]  # the d0 values
    chosen = result["tuning"][QUAD]["prodigy_d0_cosine"]["base_lr"]
    final = [r for r in result["final"] if r["method"] == "prodigy_d0_cosine"]
    assert {r["given_lr"] for r in final} == {chosen} and {r["base_lr"] for r in final} == {1.0}
