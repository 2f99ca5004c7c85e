"""End-to-end smoke tests: the real scripts, run as a user runs them, with tiny budgets."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_script(name: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / name), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_train_trainee_writes_losses_plot_and_tensorboard(tmp_path):
    out = run_script(
        "train_trainee.py", "--trainee", "mlp", "--dataset", "digits",
        "--steps", "60", "--eval-every", "20", "--out", str(tmp_path),
    )  # fmt: skip
    (folder,) = tmp_path.glob("mlp-digits__train_trainee__0__*")
    metrics = json.loads((folder / "metrics.json").read_text())
    with open(folder / "losses.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == list(range(61))
    evals = [r for r in rows if r["val_loss"]]
    assert [int(r["step"]) for r in evals] == [0, 20, 40, 60]
    assert float(evals[-1]["val_loss"]) < 0.5 * float(evals[0]["val_loss"])
    assert metrics["best_val_loss"] == pytest.approx(min(float(r["val_loss"]) for r in evals))
    assert metrics["final_train_loss"] == pytest.approx(float(rows[-1]["train_loss"]))
    assert (folder / "losses.png").stat().st_size > 1000
    assert list(folder.glob("events.out.tfevents.*"))
    assert "best val loss" in out


@pytest.mark.slow
def test_bench_trainees_writes_json(tmp_path, monkeypatch):
    out = tmp_path / "bench.json"
    run_script(
        "bench_trainees.py", "--trainees", "quadratic", "mlp", "--image-dataset", "digits",
        "--steps", "3", "--warmup", "1", "--out", str(out),
    )  # fmt: skip
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"quadratic", "mlp"}
    for r in report["results"].values():
        assert r["ms_per_step_median"] > 0 and r["timed_steps"] == 3


@pytest.mark.slow
def test_bad_argument_is_a_clear_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train_trainee.py"), "--trainee", "lstm"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "--trainee 'lstm' is invalid; valid: quadratic, mlp, resnet18, gpt" in proc.stderr


@pytest.mark.slow
def test_bench_env_writes_ratio(tmp_path):
    out = tmp_path / "env.json"
    run_script(
        "bench_env.py", "--env-ids", "LRSchedule-Quadratic-v0", "--repeats", "2",
        "--total-steps", "32", "--out", str(out),
    )  # fmt: skip
    r = json.loads(out.read_text())["results"]["LRSchedule-Quadratic-v0"]
    assert r["total_steps"] == 32 and len(r["env_seconds"]) == len(r["plain_seconds"]) == 2
    assert r["ratio"] == pytest.approx(r["env_median_s"] / r["plain_median_s"])


@pytest.mark.slow
def test_bench_vec_env_writes_table_and_plot(tmp_path):
    out = tmp_path / "vec.json"
    run_script(
        "bench_vec_env.py", "--env-ids", "LRSchedule-Quadratic-v0", "--env-steps", "2",
        "--ks", "1", "2", "--repeats", "1", "--max-subproc-k", "1", "--no-memory",
        "--out", str(out),
    )  # fmt: skip
    rows = json.loads(out.read_text())["rows"]
    assert [(r["method"], r["k"]) for r in rows] == [
        ("batched", 1),
        ("single", 1),
        ("subproc", 1),
        ("batched", 2),
        ("single", 2),
    ]
    # 2 timed env steps of 8 optimizer steps per env
    assert [r["optimizer_steps"] for r in rows] == [16, 16, 16, 32, 32]
    assert rows[1]["speedup_vs_single_env"] == 1.0
    assert all(r["steps_per_second"] > 0 for r in rows)
    for r in (rows[0], rows[3]):  # the batched rows: the floor of one step, by its parts
        parts = r["floor_parts_ms"]
        assert set(parts) == {"products", "adamw", "evaluation"}
        assert r["floor_ms_per_step"] == pytest.approx(sum(parts.values()))
        assert r["ceiling_steps_per_second"] == pytest.approx(1e3 * r["k"] / r["floor_ms_per_step"])
    assert "floor_ms_per_step" not in rows[1]
    assert out.with_suffix(".png").exists() and out.with_suffix(".csv").exists()


@pytest.mark.slow
def test_train_bc_end_to_end_tiny(tmp_path):
    run_script(
        "train_bc.py", "--env", "LRSchedule-Quadratic-v0", "--total-steps", "64",
        "--experts", "cosine", "polynomial", "--demo-episodes", "2", "--eval-episodes", "2",
        "--epochs", "20", "--critic-epochs", "5", "--out", str(tmp_path), "--no-progress",
    )  # fmt: skip
    (folder,) = tmp_path.glob("LRSchedule-Quadratic-v0__train_bc__0__*")
    report = json.loads((folder / "metrics.json").read_text())
    assert set(report["policies"]) == {"cosine", "polynomial", "combined"}
    combined = report["policies"]["combined"]
    assert set(combined["vs_expert"]) == {"cosine", "polynomial"}
    assert combined["demonstrations"] == 4
    cosine = report["policies"]["cosine"]
    assert cosine["action_error_after"] < cosine["action_error_before"]
    assert cosine["vs_expert"]["cosine"]["seeds"] == [1000, 1001]
    for name in ("cosine", "polynomial", "combined"):
        assert (folder / "policies" / f"bc_{name}.pt").stat().st_size > 0
        assert (folder / "plots" / f"bc_{name}.png").stat().st_size > 1000
        assert (folder / "plots" / f"bc_{name}.csv").stat().st_size > 0
    assert json.loads((folder / "demos" / "cosine" / "meta.json").read_text())["seeds"] == [0, 1]
    # the saved demonstrations are reused by a second run
    run_script(
        "train_bc.py", "--env", "LRSchedule-Quadratic-v0", "--total-steps", "64",
        "--experts", "cosine", "--demos", str(folder / "demos"), "--eval-episodes", "1",
        "--epochs", "1", "--critic-epochs", "1", "--out", str(tmp_path / "again"), "--no-progress",
    )  # fmt: skip


@pytest.mark.slow
def test_bench_policy_writes_ratio(tmp_path):
    import gymnasium as gym

    from agents.policy import PolicyConfig, make_policy, save_policy

    env = gym.make("LRSchedule-Quadratic-v0", total_steps=32)
    config = PolicyConfig(d_model=16, features_dim=16)
    path = save_policy(make_policy(env.observation_space, env.action_space, config),
                       tmp_path / "p.pt", config, env=env, gamma=0.99)  # fmt: skip
    out = tmp_path / "policy.json"
    # no --env: the env the policy file records (Quadratic, 32 steps: 4 actions of 8)
    run_script("bench_policy.py", "--policy", str(path), "--out", str(out))
    r = json.loads(out.read_text())
    assert r["actions"] == 4
    assert r["policy_ms_per_action"] > 0 and r["trainee_ms_per_action"] > 0
    assert r["ratio"] == pytest.approx(r["policy_ms_per_action"] / r["trainee_ms_per_action"])


@pytest.mark.slow
def test_train_qlearning_tiny(tmp_path):
    import numpy as np

    run_script(
        "train_qlearning.py", "--env", "LRSchedule-Quadratic-v0", "--episodes", "2",
        "--total-steps", "48", "--interval", "16", "--epsilon", "0.5", "--out", str(tmp_path),
    )  # fmt: skip
    (folder,) = tmp_path.glob("LRSchedule-Quadratic-v0__train_qlearning__0__*")
    report = json.loads((folder / "metrics.json").read_text())
    assert [len(e["actions"]) for e in report["episodes"]] == [3, 3]
    with np.load(folder / "qtable.npz") as z:
        assert np.count_nonzero(z["q"]) >= 1  # the table learned and was saved
    assert list(folder.glob("events.out.tfevents.*"))


@pytest.mark.slow
def test_run_experiment_tiny(tmp_path, monkeypatch):
    from trainees.data.chars import prepare_bytes

    prepare_bytes(b"To be, or not to be: that is the question.\n" * 60,
                  tmp_path / "data" / "shakespeare_char", (0.9, 0.1))  # fmt: skip
    monkeypatch.setenv("LRGYM_DATA_DIR", str(tmp_path / "data"))
    out = run_script(
        "run_experiment.py", "--datasets", "shakespeare_char", "enwik8", "--seeds", "2",
        "--total-steps", "32", "--interval", "16", "--runs", "baseline_cosine", "qlearning",
        "--out", str(tmp_path / "runs"),
    )  # fmt: skip
    assert "skipping enwik8" in out
    (folder,) = (tmp_path / "runs").glob("LRSchedule-GPT-v0__run_experiment__0__*")
    result = json.loads((folder / "results_shakespeare_char.json").read_text())["results"]
    assert set(result) == {"baseline_cosine", "qlearning"}
    assert result["qlearning"]["summary"]["best_val_loss"]["n"] == 2
    assert "| qlearning |" in (folder / "results_shakespeare_char.md").read_text()
    for name in ("train_loss", "val_loss", "lr"):
        assert (folder / f"{name}_shakespeare_char.png").stat().st_size > 1000
        assert (folder / f"{name}_shakespeare_char.csv").is_file()
    with open(folder / "runs_shakespeare_char.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2 * 2  # 2 run types x 2 seeds x 2 actions
    assert (folder / "qtable_shakespeare_char_qlearning.npz").is_file()


@pytest.mark.slow
def test_evaluate_writes_results_and_resumes(tmp_path):
    import gymnasium as gym

    from agents.policy import PolicyConfig, make_policy, save_policy

    env = gym.make("LRSchedule-Quadratic-v0", total_steps=64)
    policy = make_policy(env.observation_space, env.action_space, PolicyConfig(), seed=0)
    path = save_policy(policy, tmp_path / "p.pt", PolicyConfig(), env=env.unwrapped, gamma=0.99)
    out = tmp_path / "eval"
    args = (
        "--envs", "LRSchedule-Quadratic-v0", "--options.total-steps", "64",
        "--methods", "cosine", "constant", "schedulefree", "--policies", f"rand={path}",
        "--final-seeds", "3", "--tuning-seeds", "1", "--lr-factors", "0.5", "1",
        "--workers", "0", "--out", str(out), "--no-progress",
    )  # fmt: skip
    stdout = run_script("evaluate.py", *args)
    results = json.loads((out / "results.json").read_text())
    rows = {r["method"]: r for r in results["envs"]["LRSchedule-Quadratic-v0"]["methods"]}
    assert list(rows) == ["cosine", "constant", "schedulefree", "rand"]
    assert rows["rand"]["base_lr"] == 0.05 and rows["rand"]["n"] == 3
    assert rows["cosine"]["base_lr"] in (0.025, 0.05)  # the tuned one of the two
    assert "delta_test_loss" in rows["constant"] and "delta_test_loss" not in rows["cosine"]
    assert results["timing"]["runs"] == 3 * 2 + 4 * 3  # 3 tuned x 2 LRs x 1 seed + finals
    with open(out / "runs.csv") as f:
        assert len(list(csv.DictReader(f))) == 12
    assert "| schedulefree |" in stdout and "| rand | 0.05 |" in stdout
    for name in ("test_loss", "curves"):
        assert (out / "plots" / f"{name}_LRSchedule-Quadratic-v0.png").stat().st_size > 1000
    assert list((out / "tb").glob("events.out.tfevents.*"))
    finished = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")}
    assert len(finished) == 18
    run_script("evaluate.py", *args)  # resumed: nothing runs again
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")} == finished


@pytest.mark.slow
def test_bench_scheduler_times_both_loops(tmp_path):
    out = tmp_path / "sched.json"
    run_script(
        "bench_scheduler.py", "--env-ids", "LRSchedule-Quadratic-v0", "--total-steps", "32",
        "--out", str(out),
    )  # fmt: skip
    r = json.loads(out.read_text())["results"]["LRSchedule-Quadratic-v0"]
    assert (r["steps"], r["steps_per_action"], r["grad_clip"]) == (32, 8, 1.0)
    assert set(r["runs"]) == {"baseline", "learned", "baseline_unclipped", "learned_unclipped"}
    for suffix in ("", "_unclipped"):
        gross, base = (
            r["scheduler_ms_per_step" + suffix],
            r["baseline_control_ms_per_step" + suffix],
        )
        assert r["net_ms_per_step" + suffix] == pytest.approx(gross - base)
        assert r["fraction" + suffix] == pytest.approx(gross / r["train_ms_per_step"])
        assert gross > 0 and base > 0
    for run in r["runs"].values():
        assert run["control_ms_per_step"] == pytest.approx(
            run["after_backward_ms_per_step"] + run["after_optimizer_ms_per_step"]
        )
