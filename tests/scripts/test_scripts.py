"""End-to-end smoke tests: the real scripts, run as a user runs them, with tiny budgets."""

from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import get_args, get_type_hints

import pytest

from common.cli import parse
from envs.rewards import REWARDS
from experts.schedules import SCHEDULES
from trainees import TRAINEES
from trainees.data.chars import CORPORA

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
        "train_trainee.py",
        "--trainee",
        "mlp",
        "--dataset",
        "digits",
        "--steps",
        "60",
        "--eval-every",
        "20",
        "--out",
        str(tmp_path),
    )
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
        "bench_trainees.py",
        "--trainees",
        "quadratic",
        "mlp",
        "--image-dataset",
        "digits",
        "--steps",
        "3",
        "--warmup",
        "1",
        "--out",
        str(out),
    )
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"quadratic", "mlp"}
    for r in report["results"].values():
        assert r["ms_per_step_median"] > 0 and r["timed_steps"] == 3


@pytest.mark.slow
def test_bad_argument_is_a_clear_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train_trainee.py"), "--trainee", "lstm"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr == (
        "train_trainee.py: error: invalid choice 'lstm' for --trainee; "
        "valid: gpt, mlp, quadratic, resnet18\n"  # sorted: tyro's order varies for unions
    )


@pytest.mark.slow
def test_bench_env_writes_ratio(tmp_path):
    out = tmp_path / "env.json"
    run_script(
        "bench_env.py",
        "--env-ids",
        "LRSchedule-Quadratic-v0",
        "--repeats",
        "2",
        "--total-steps",
        "32",
        "--out",
        str(out),
    )
    r = json.loads(out.read_text())["results"]["LRSchedule-Quadratic-v0"]
    assert r["total_steps"] == 32 and len(r["env_seconds"]) == len(r["plain_seconds"]) == 2
    assert r["ratio"] == pytest.approx(r["env_median_s"] / r["plain_median_s"])


@pytest.mark.slow
def test_bench_vec_env_writes_table_and_plot(tmp_path):
    out = tmp_path / "vec.json"
    run_script(
        "bench_vec_env.py",
        "--env-ids",
        "LRSchedule-Quadratic-v0",
        "--env-steps",
        "2",
        "--ks",
        "1",
        "2",
        "--repeats",
        "1",
        "--max-subproc-k",
        "1",
        "--no-memory",
        "--out",
        str(out),
    )
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
        "train_bc.py",
        "--env",
        "LRSchedule-Quadratic-v0",
        "--total-steps",
        "64",
        "--experts",
        "cosine",
        "polynomial",
        "--demo-episodes",
        "2",
        "--eval-episodes",
        "2",
        "--epochs",
        "20",
        "--critic-epochs",
        "5",
        "--out",
        str(tmp_path),
        "--no-progress",
    )
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
        "train_bc.py",
        "--env",
        "LRSchedule-Quadratic-v0",
        "--total-steps",
        "64",
        "--experts",
        "cosine",
        "--demos",
        str(folder / "demos"),
        "--demo-episodes",
        "2",
        "--eval-episodes",
        "1",
        "--epochs",
        "1",
        "--critic-epochs",
        "1",
        "--out",
        str(tmp_path / "again"),
        "--no-progress",
    )


@pytest.mark.slow
def test_bench_policy_writes_ratio(tmp_path):
    import gymnasium as gym

    from agents.policy import PolicyConfig, make_policy, save_policy

    env = gym.make("LRSchedule-Quadratic-v0", total_steps=32)
    config = PolicyConfig(d_model=16, features_dim=16)
    path = save_policy(
        make_policy(env.observation_space, env.action_space, config),
        tmp_path / "p.pt",
        config,
        env=env,
        gamma=0.99,
    )
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
        "train_qlearning.py",
        "--env",
        "LRSchedule-Quadratic-v0",
        "--episodes",
        "2",
        "--total-steps",
        "48",
        "--interval",
        "16",
        "--epsilon",
        "0.5",
        "--out",
        str(tmp_path),
    )
    (folder,) = tmp_path.glob("LRSchedule-Quadratic-v0__train_qlearning__0__*")
    report = json.loads((folder / "metrics.json").read_text())
    assert [len(e["actions"]) for e in report["episodes"]] == [3, 3]
    with np.load(folder / "qtable.npz") as z:
        assert np.count_nonzero(z["q"]) >= 1  # the table learned and was saved
    assert list(folder.glob("events.out.tfevents.*"))


@pytest.mark.slow
def test_run_experiment_tiny(tmp_path, monkeypatch):
    from trainees.data.chars import prepare_bytes

    prepare_bytes(
        b"To be, or not to be: that is the question.\n" * 60,
        tmp_path / "data" / "shakespeare_char",
        (0.9, 0.1),
    )
    monkeypatch.setenv("LRGYM_DATA_DIR", str(tmp_path / "data"))
    out = run_script(
        "run_experiment.py",
        "--datasets",
        "shakespeare_char",
        "enwik8",
        "--seeds",
        "2",
        "--total-steps",
        "32",
        "--interval",
        "16",
        "--runs",
        "baseline_cosine",
        "qlearning",
        "--out",
        str(tmp_path / "runs"),
    )
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
        "--env",
        "LRSchedule-Quadratic-v0",
        "--total-steps",
        "64",
        "--methods",
        "cosine",
        "constant",
        "schedulefree",
        "--policies",
        f"rand={path}",
        "--n-final-seeds",
        "3",
        "--n-tuning-seeds",
        "1",
        "--lr-factors",
        "0.5",
        "1",
        "--workers",
        "0",
        "--out",
        str(out),
        "--no-progress",
    )
    stdout = run_script("evaluate.py", *args)
    results = json.loads((out / "results.json").read_text())
    rows = {r["method"]: r for r in results["envs"]["LRSchedule-Quadratic-v0"]["methods"]}
    assert list(rows) == ["cosine", "constant", "schedulefree", "rand"]
    assert rows["rand"]["base_lr"] == 0.05 and rows["rand"]["n"] == 3
    assert rows["cosine"]["base_lr"] in (0.025, 0.05)  # the tuned one of the two
    assert "delta_test_loss" in rows["constant"] and "delta_test_loss" not in rows["cosine"]
    assert results["envs"]["LRSchedule-Quadratic-v0"]["n_compared"] == 3
    assert {rows[m]["verdict"] for m in ("constant", "schedulefree", "rand")} <= {
        "better",
        "worse",
        "not resolved",
    }
    assert "3 methods compared with cosine on the same 3 seeds" in stdout
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


def run_evaluate(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """``scripts/evaluate.py`` run from ``cwd`` (where its default run folders go)."""
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "evaluate.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_evaluate_makes_a_new_run_folder_by_default(tmp_path):
    args = (  # the old flag names still work, as aliases
        "--envs",
        "LRSchedule-Quadratic-v0",
        "--total-steps",
        "64",
        "--methods",
        "cosine",
        "--final-seeds",
        "2",
        "--tuning-seeds",
        "1",
        "--lr-factors",
        "1",
        "--workers",
        "0",
        "--no-progress",
    )
    for _ in range(2):
        proc = run_evaluate(tmp_path, *args)
        assert proc.returncode == 0, proc.stderr[-3000:]
    folders = sorted((tmp_path / "runs" / "evaluate").iterdir())
    assert len(folders) == 2  # the same command twice: two experiments, neither refused
    for folder in folders:
        assert folder.name.startswith("LRSchedule-Quadratic-v0__evaluate__")
        assert len(list((folder / "runs").glob("*.json"))) == 1 + 2


def test_evaluate_refuses_a_reference_that_is_not_a_method(tmp_path):
    proc = run_evaluate(
        tmp_path,
        "--envs",
        "LRSchedule-Quadratic-v0",
        "--methods",
        "cosine",
        "constant",
        "--reference",
        "cosinus",
        "--final-seeds",
        "2",
        "--tuning-seeds",
        "1",
        "--lr-factors",
        "1",
        "--workers",
        "0",
        "--no-progress",
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "'cosinus'" in proc.stderr and "valid: cosine, constant" in proc.stderr
    assert not (tmp_path / "runs").exists()  # refused before any work


@pytest.mark.slow
def test_bench_scheduler_times_both_loops(tmp_path):
    out = tmp_path / "sched.json"
    run_script(
        "bench_scheduler.py",
        "--env-ids",
        "LRSchedule-Quadratic-v0",
        "--total-steps",
        "32",
        "--out",
        str(out),
    )
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


# --- arguments: checked before any work starts; one vocabulary of flags -------------------


def load_script(name: str) -> ModuleType:
    """Import ``scripts/<name>.py`` as a module (scripts/ is not a package)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # tyro and dataclasses look the module up by name
        spec.loader.exec_module(module)
    return sys.modules[name]


def shakespeare_only(tmp_path: Path, corpus_dir: str) -> Path:
    """A data folder holding only a (small) prepared tiny Shakespeare."""
    data = tmp_path / "data"
    (data / "shakespeare_char").mkdir(parents=True)
    for name in ("train.bin", "val.bin", "meta.pkl"):
        (data / "shakespeare_char" / name).symlink_to(Path(corpus_dir) / name)
    return data


def refused(script: str, argv: list[str], capsys: pytest.CaptureFixture) -> str:
    """The one line ``parse`` prints when it refuses ``argv`` (exit status 2)."""
    with pytest.raises(SystemExit) as exit_info:
        parse(load_script(script).Args, argv=argv)
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    return line


def test_script_literals_equal_their_registries():
    from benchmarks.throughput import METHODS
    from benchmarks.trainee_speed import BENCHMARKS
    from experiments.qlearning import RUN_TYPES
    from experiments.trainee_job import TRAINEE_DATASETS
    from trainees import TRAINEES, GPTConfig, MLPConfig, ResNet18Config
    from trainees.batched.trainee import BATCHED_OPTIMIZERS

    # the Literal types of the scripts' Args (defined beside their registries)
    assert get_args(load_script("run_experiment").RunType) == tuple(RUN_TYPES)
    assert get_args(load_script("bench_trainees").BenchName) == BENCHMARKS
    vec = load_script("bench_vec_env")
    assert get_args(vec.VecMethod) == METHODS
    assert get_args(vec.BatchedOptimizer) == BATCHED_OPTIMIZERS
    datasets = TRAINEE_DATASETS
    assert tuple(datasets) == TRAINEES and datasets["quadratic"] == ()
    for name, config in (("mlp", MLPConfig), ("resnet18", ResNet18Config), ("gpt", GPTConfig)):
        assert set(datasets[name]) == set(get_args(get_type_hints(config)["dataset"]))


# each renamed flag's new spelling and its old one (kept as an alias for one release)
RENAMED = [
    ("bench_env", "env", ["--env", "LRSchedule-Quadratic-v0", "LRSchedule-MLP-v0"],
     ["--env-ids", "LRSchedule-Quadratic-v0", "LRSchedule-MLP-v0"]),
    ("bench_env", "env", ["--env", "LRSchedule-Quadratic-v0"],
     ["--envs", "LRSchedule-Quadratic-v0"]),
    ("bench_env", "dataset", ["--dataset", "digits"], ["--image-dataset", "digits"]),
    ("bench_scheduler", "env", ["--env", "LRSchedule-Quadratic-v0"],
     ["--env-ids", "LRSchedule-Quadratic-v0"]),
    ("bench_vec_env", "env", ["--env", "LRSchedule-Quadratic-v0", "--env-steps", "2"],
     ["--env-ids", "LRSchedule-Quadratic-v0", "--env-steps", "2"]),
    ("bench_vec_env", "dataset", ["--dataset", "digits"], ["--image-dataset", "digits"]),
    ("bench_trainees", "dataset", ["--dataset", "digits"], ["--image-dataset", "digits"]),
    ("bench_trainees", "timed_steps", ["--timed-steps", "3"], ["--steps", "3"]),
    ("train_trainee", "total_steps", ["--total-steps", "60"], ["--steps", "60"]),
    ("run_experiment", "n_seeds", ["--n-seeds", "2"], ["--seeds", "2"]),
    ("run_experiment", "dataset", ["--dataset", "enwik8", "text8"],
     ["--datasets", "enwik8", "text8"]),
]  # fmt: skip


@pytest.mark.parametrize("script, field, new, old", RENAMED)
def test_renamed_flags_parse_in_both_spellings(script, field, new, old):
    args_type = load_script(script).Args
    default = getattr(parse(args_type, argv=[]), field)
    value = getattr(parse(args_type, argv=new), field)
    assert value != default
    assert getattr(parse(args_type, argv=old), field) == value


@pytest.mark.parametrize(
    "script, argv, words",
    [
        ("train_bc", ["--env", "LRSchedule-MPL-v0"], ["'LRSchedule-MPL-v0'", "LRSchedule-MLP-v0"]),
        ("train_qlearning", ["--env", "GPT"], ["'GPT'", "LRSchedule-GPT-v0"]),
        ("train_qlearning", ["--reward", "stability"], ["'stability'", "neg_val_loss"]),
        ("bench_env", ["--env", "LRSchedule-Quadratic-v0", "Nope-v1"], ["'Nope-v1'"]),
        ("bench_scheduler", ["--env-ids", "Nope-v1"], ["'Nope-v1'", "LRSchedule-GPT-v0"]),
        ("bench_policy", ["--policy", "p.pt", "--env", "Nope-v1"], ["'Nope-v1'"]),
        ("bench_vec_env", ["--env", "LRSchedule-MLP-v0"], ["--env-steps", "one value per"]),
        ("bench_vec_env", ["--methods", "threads"], ["'threads'", "subproc"]),
        ("bench_trainees", ["--trainees", "gpt"], ["'gpt'", "gpt-tiny"]),
        ("run_experiment", ["--runs", "sarsa"], ["'sarsa'", "qlearning_eps_decay"]),
        ("run_experiment", ["--dataset", "wikitext"], ["'wikitext'", "enwik8"]),
        (
            "train_trainee",
            ["--trainee", "gpt", "--dataset", "mnist"],
            ["'mnist'", "'gpt'", "shakespeare_char, enwik8, text8"],
        ),
        ("train_trainee", ["--trainee", "mlp", "--dataset", "enwik8"], ["'enwik8'", "digits"]),
        (
            "sample_tasks",
            ["--seed", "0", "--n", "1", "--out", "x", "--table", "t.json", "--version", "3"],
            ["sampler version=3 is invalid; valid: 1, 2"],
        ),
        (
            "sample_tasks",
            ["--seed", "0", "--n", "1", "--out", "x", "--table", "t/sampler_v1_s0_n1.json"],
            ["names sampler v1, but version=2: pass --version 1"],
        ),
        (
            "train_tuningfree",
            ["--out", "x", "--tasks", "nope.json"],
            ["'nope.json' does not exist", "experiments/mixtures"],
        ),
        (
            "train_tuningfree",
            [
                "--out",
                "x",
                "--tasks",
                "experiments/mixtures/tuningfree_mixed.json",
                "--ppo-timesteps",
                "64",
                "--no-ppo-privileged-critic",
            ],
            ["privileged_critic=False is invalid with a mixture"],
        ),
    ],
)
def test_bad_names_are_refused_before_any_work(script, argv, words, capsys):
    line = refused(script, argv, capsys)
    assert ": error: " in line and all(w in line for w in words), line


@pytest.mark.slow
def test_train_trainee_dataset_defaults_to_the_trainees(tmp_path, corpus_dir, monkeypatch):
    train_trainee = load_script("train_trainee")
    parsed = {t: parse(train_trainee.Args, argv=["--trainee", t]) for t in TRAINEES}
    assert {t: a.dataset_name for t, a in parsed.items()} == {
        "quadratic": None,
        "mlp": "digits",
        "resnet18": "digits",
        "gpt": "shakespeare_char",
    }
    monkeypatch.setenv("LRGYM_DATA_DIR", str(shakespeare_only(tmp_path, corpus_dir)))
    args = parse(
        train_trainee.Args, argv=["--trainee", "gpt", "--total-steps", "2", "--out", str(tmp_path)]
    )
    metrics = train_trainee.main(args)
    assert metrics["dataset"] == "shakespeare_char"
    assert Path(metrics["run_dir"]).name.startswith("gpt-shakespeare_char__train_trainee__0__")


def test_train_bc_refuses_saved_demonstrations_of_other_seeds(tmp_path, capsys):
    import gymnasium as gym

    from experts.demos import collect_experts

    env_id, kwargs = "LRSchedule-Quadratic-v0", {"total_steps": 32}
    env = gym.make(env_id, **kwargs)
    collect_experts(tmp_path / "demos", ["cosine"], env, [0, 1], env_id=env_id, env_kwargs=kwargs)
    collect_experts(
        tmp_path / "demos" / "selection", ["cosine"], env, [500], env_id=env_id, env_kwargs=kwargs
    )
    base = [
        "--env",
        env_id,
        "--total-steps",
        "32",
        "--experts",
        "cosine",
        "--demos",
        str(tmp_path / "demos"),
        "--out",
        str(tmp_path / "runs"),
    ]
    train_bc = load_script("train_bc")
    parse(train_bc.Args, argv=[*base, "--demo-episodes", "2", "--selection-episodes", "1"])
    line = refused("train_bc", [*base, "--selection-episodes", "1"], capsys)  # 8 asked
    assert "seeds: stored [0, 1], expected [0, 1, 2, 3, 4, 5, 6, 7]" in line
    line = refused("train_bc", [*base, "--demo-episodes", "2"], capsys)  # 2 selection asked
    assert "seeds: stored [500], expected [500, 501]" in line
    line = refused(
        "train_bc",
        [
            *base[:2],
            "--total-steps",
            "64",
            *base[4:],
            "--demo-episodes",
            "2",
            "--selection-episodes",
            "1",
        ],
        capsys,
    )
    assert "env_kwargs: stored {'total_steps': 32}, expected {'total_steps': 64}" in line
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
@pytest.mark.parametrize("argv", [["--reward", "nope"], ["--experts", "cosine", "nope"]])
def test_train_bc_argument_error_is_one_line_exit_2_and_no_run(tmp_path, argv):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "train_bc.py"),
            "--env",
            "LRSchedule-Quadratic-v0",
            *argv,
            "--out",
            str(tmp_path / "runs"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("train_bc.py: error: ") and "'nope'" in lines[0]
    valid = REWARDS if argv[0] == "--reward" else tuple(SCHEDULES)
    assert all(name in lines[0] for name in valid), lines[0]
    assert not (tmp_path / "runs").exists() and proc.stdout == ""


@pytest.mark.slow
def test_run_experiment_skips_missing_corpora_without_downloading(
    tmp_path, corpus_dir, no_download, monkeypatch, capsys
):
    run_experiment = load_script("run_experiment")
    monkeypatch.setenv("LRGYM_DATA_DIR", str(shakespeare_only(tmp_path, corpus_dir)))
    argv = [
        "--runs",
        "baseline_cosine",
        "--n-seeds",
        "1",
        "--total-steps",
        "16",
        "--interval",
        "16",
        "--out",
        str(tmp_path / "runs"),
    ]
    args = parse(run_experiment.Args, argv=argv)
    assert args.dataset == CORPORA and not args.download  # every corpus, by default
    report = run_experiment.main(args)  # no_download fails the test on any download
    assert set(report) == {"shakespeare_char"}
    out = capsys.readouterr().out
    assert "skipping enwik8" in out and "skipping text8" in out and "--download" in out


def test_run_experiment_downloads_only_with_the_flag(tmp_path, monkeypatch, capsys):
    run_experiment = load_script("run_experiment")
    monkeypatch.delenv("LRGYM_OFFLINE", raising=False)
    monkeypatch.setenv("LRGYM_DATA_DIR", str(tmp_path / "empty"))
    urls = []

    def unreachable(url, target, md5):
        urls.append(url)
        raise OSError("no network in tests")

    monkeypatch.setattr("trainees.data.resolve._download", unreachable)
    argv = ["--dataset", "text8", "--runs", "baseline_cosine", "--out", str(tmp_path / "runs")]
    assert run_experiment.main(parse(run_experiment.Args, argv=argv)) == {}
    assert urls == []
    assert run_experiment.main(parse(run_experiment.Args, argv=[*argv, "--download"])) == {}
    assert urls == ["http://mattmahoney.net/dc/text8.zip"]
    assert "skipping text8" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("version", ["v0", "v1"])  # v1: the dimensionless observation
def test_train_tuningfree_end_to_end_tiny_on_a_mixture(version, tmp_path):
    mixture = tmp_path / "mix.json"
    mixture.write_text(
        json.dumps(
            {
                "tasks": [
                    {
                        "env_id": f"LRSchedule-Quadratic-{version}",
                        "options": {"total_steps": 96},
                        "reference_lr": 0.02,
                        "source": "a test",
                    }
                ]
            }
        )
    )
    out = tmp_path / "run"
    args = [
        "--out",
        str(out),
        "--env",
        f"LRSchedule-Quadratic-{version}",
        "--total-steps",
        "64",
        "--reference-lr",
        "0.01",
        "--demo-episodes",
        "2",
        "--rounds",
        "1",
        "--episodes-per-round",
        "2",
        "--epochs",
        "2",
        "--tasks",
        str(mixture),
        "--episodes-per-extra-task",
        "1",
        "--workers",
        "1",
        "--no-progress",
    ]
    stdout = run_script("train_tuningfree.py", *args)
    assert f"wrote {out}/policy.pt" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["round"] for r in metrics["rounds"]] == [0, 1]
    assert {n: t["episodes"] for n, t in metrics["rounds"][1]["tasks"].items()} == {
        "main": 2,
        "Quadratic-96steps": 1,
    }
    assert metrics["settings"]["config"]["extra_tasks"][0]["reference_lr"] == 0.02
    for name in ("action_error", "lr_curves"):
        assert (out / "plots" / f"{name}.png").stat().st_size > 1000
        assert (out / "plots" / f"{name}.csv").stat().st_size > 0
    assert list((out / "tb").iterdir())
    assert "round 1" not in run_script("train_tuningfree.py", *args)  # resumed: nothing to do


def test_the_suite_scripts_refuse_bad_arguments_before_any_work(tmp_path, capsys):
    plan = "evaluation/plans/suite_v1_baselines.json"
    out = str(tmp_path / "o")
    line = refused("run_suite", ["--plan", plan, "--out", out, "--workloads", "resnet"], capsys)
    assert "['resnet'] are not workloads of the test suite; valid: " in line
    assert "resnet18_digits_256" in line
    line = refused("run_suite", ["--plan", str(tmp_path / "none.json"), "--out", out], capsys)
    assert f"suite plan '{tmp_path / 'none.json'}' is not a file" in line
    line = refused("tune_suite", ["--out", out, "--guess", "vit_mnist_1000:1e-3"], capsys)
    assert "--guess 'vit_mnist_1000:1e-3' is invalid; expected name=lr, lr > 0" in line
    assert not (tmp_path / "o").exists()


def test_lr_tracking_reads_a_suite_folder_and_writes_its_files(tmp_path, capsys):
    workload = tmp_path / "suite" / "w"
    (workload / "runs").mkdir(parents=True)
    sweep = {"reference_lr": 0.01, "final_seeds": [7]}
    (workload / "results.json").write_text(json.dumps({"sweep": sweep}))
    for k, lrs in [(0, [0.01, 0.0]), (1, [0.02, 0.0])]:  # cosine: mean 0.005, then 0.01
        record = {"phase": "final", "method": "cosine", "given_lr": 0.01 * 2**k, "seed": 7}
        record |= {"key": f"final__c{k}", "optimizer": "adamw"}
        record |= {"curve": {"lr": lrs, "step": [32, 64]}}
        (workload / "runs" / f"final__c{k}.json").write_text(json.dumps(record))
    load_script("lr_tracking").main(
        parse(load_script("lr_tracking").Args, ["--suite", str(tmp_path / "suite")])
    )
    assert "w: correction slope cosine 1.00" in capsys.readouterr().out
    tracked = json.loads((tmp_path / "suite" / "lr_tracking.json").read_text())
    assert [p["median"] for p in tracked["w"]["methods"]["cosine"]["by_k"]] == [0.0, 1.0]
    assert (tmp_path / "suite" / "plots" / "lr_tracking.png").exists()
    with pytest.raises(SystemExit):
        load_script("lr_tracking").main(
            parse(load_script("lr_tracking").Args, ["--suite", str(tmp_path)])
        )
    assert "holds no workload report" in capsys.readouterr().err
