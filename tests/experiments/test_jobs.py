"""The jobs behind the scripts as library calls: what they write, and the arguments they refuse."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from common.cli import ArgumentError
from experiments.ppo_job import COUNT_ARGS, check_finetune_args
from experiments.qlearning import check_experiment_args, check_qlearning_reward, downloads
from experiments.trainee_job import check_trainee_dataset, dataset_name, train_trainee
from trainees.data.resolve import OFFLINE_ENV

ROOT = Path(__file__).resolve().parents[2]


def test_train_trainee_writes_its_run_folder(tmp_path, capsys):
    metrics = train_trainee(
        "quadratic", total_steps=4, eval_every=2, out=tmp_path, record={"trainee": "quadratic"}
    )
    folder = Path(metrics["run_dir"])
    assert folder.parent == tmp_path and folder.name.startswith("quadratic__train_trainee__0__")
    assert json.loads((folder / "metrics.json").read_text()) == metrics
    assert metrics["args"] == {"trainee": "quadratic"} and metrics["dataset"] is None
    with open(folder / "losses.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows if r["val_loss"]] == [0, 2, 4]
    assert (folder / "losses.png").stat().st_size > 1000
    assert "step     0  val" in capsys.readouterr().out


def test_checks_refuse_with_the_flag_and_the_valid_values():
    assert dataset_name("gpt", None) == "shakespeare_char"
    assert dataset_name("quadratic", None) is None
    with pytest.raises(ValueError, match="'mnist' is not a dataset of trainee 'gpt'"):
        check_trainee_dataset("gpt", "mnist")
    with pytest.raises(ValueError, match=r"--reward 'stability'.*neg_val_loss, val_improvement"):
        check_qlearning_reward("stability")
    with pytest.raises(ValueError, match=r"--runs \['sarsa'\] invalid"):
        check_experiment_args(["enwik8"], ["sarsa"], 1)
    with pytest.raises(ValueError, match="--n-seeds 0 is invalid"):
        check_experiment_args(["enwik8"], ["qlearning"], 0)
    args = {"init": "p.pt", "resume": None, "expert": None, "env": None, "seed": 0}
    args |= dict.fromkeys(COUNT_ARGS, 1)
    check_finetune_args(args)
    for change, message in [
        ({"init": None}, "give --init POLICY_FILE"),
        ({"expert": "nope"}, "--expert 'nope' is invalid"),
        ({"env": "Nope-v1"}, "--env 'Nope-v1' is not a registered id"),
        ({"n_envs": 0}, "--n-envs 0 is invalid; expected >= 1"),
        ({"seed": 10_000}, "--seed: "),
    ]:
        with pytest.raises(ArgumentError, match=message):
            check_finetune_args(args | change)


def test_downloads_are_refused_only_within_and_the_setting_restored(monkeypatch):
    monkeypatch.delenv(OFFLINE_ENV, raising=False)
    with downloads(allowed=False):
        assert os.environ[OFFLINE_ENV] == "1"
    assert OFFLINE_ENV not in os.environ
    monkeypatch.setenv(OFFLINE_ENV, "0")
    with downloads(allowed=False):
        assert os.environ[OFFLINE_ENV] == "1"
    assert os.environ[OFFLINE_ENV] == "0"
    with downloads(allowed=True):
        assert os.environ[OFFLINE_ENV] == "0"


def test_packages_export_lazily_and_import_one_way():
    code = (
        "import sys\n"
        "import envs, agents, experts, trainees\n"
        "upper = ('evaluation', 'benchmarks', 'experiments', 'scripts')\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in upper], 'imported upward'\n"
        "import experiments.qlearning\n"
        "assert 'experiments.ppo_job' not in sys.modules, 'the package imported every module'\n"
        "import benchmarks, evaluation, experiments\n"
        "for pkg in (benchmarks, evaluation, experiments):\n"
        "    assert pkg.__all__ and all(getattr(pkg, n) is not None for n in pkg.__all__)\n"
        "assert experiments.train_bc.__module__ == 'experiments.bc_pipeline'\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
