"""The task sampler: reproducible from its seed, never a held-out workload, and its tables."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from torch import nn

from common.files import write_json
from evaluation.backends import LocalBackend
from evaluation.suite import TrainingTask, check_held_out, held_out
from experiments.task_mixture import check_tasks, load_tasks
from experiments.task_sampler import (
    CADENCE,
    FAMILIES,
    MAX_RUN_SECONDS,
    SampledTask,
    estimated_seconds,
    mixture,
    parameter_count,
    read_table,
    reference_table,
    sample_tasks,
    tune_tasks,
)
from tests.conftest import needs_real_data
from trainees import make_trainee
from trainees.data.images import ImageDataset, downsampled, permuted


def test_the_same_seed_draws_the_same_tasks_and_another_seed_others():
    a, b = sample_tasks(3, 30), sample_tasks(3, 30)
    assert a == b
    assert sample_tasks(3, 10) == a[:10]  # a longer draw extends a shorter one
    c = sample_tasks(4, 30)
    assert [t.options for t in c] != [t.options for t in a]
    assert {t.family for t in a} == set(FAMILIES)  # every family in 30 draws
    assert len({tuple(sorted(t.options.items())) for t in a}) == 30


def test_no_draw_is_held_out_and_every_task_runs_at_one_cadence():
    tasks = [t for seed in range(20) for t in sample_tasks(seed, 25)]
    check_held_out([t.training_task() for t in tasks])  # raises on any held-out task
    held = {w.trainee for w in held_out() if w.new_architecture}
    assert held == {"resnet18", "vit", "lstm", "lora"}
    for t in tasks:
        spec = dict(gym.spec(t.env_id).kwargs) | dict(t.options)
        assert spec["trainee"] not in held
        assert {k: t.options[k] for k in CADENCE} == dict(CADENCE)
        assert 256 <= t.options["total_steps"] <= 3072
        assert estimated_seconds(t.family, t.options) <= MAX_RUN_SECONDS  # cheap tasks only
    # the families keep their shares (redraws stay within a family): 500 draws, within 4 SE
    for family, share in FAMILIES.items():
        count = sum(t.family == family for t in tasks)
        assert abs(count / len(tasks) - share) < 4 * (share * (1 - share) / len(tasks)) ** 0.5
    # the check the draw relies on refuses a held-out workload put in its place
    wide = TrainingTask(
        "LRSchedule-MLP-v0", {"dataset": "mnist", "hidden": 1024, "total_steps": 500}
    )
    with pytest.raises(ValueError, match="mlp_mnist_wide_500"):
        check_held_out([wide])


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="n=0"):
        sample_tasks(0, 0)
    with pytest.raises(ValueError, match="family='cnn'"):
        SampledTask("x", "cnn", {})
    with pytest.raises(ValueError, match="observation='v2'"):
        sample_tasks(0, 1)[0].env_id_for("v2")


def test_the_cost_model_by_hand():
    mlp = {"hidden": 10, "depth": 2, "norm": "layer", "dataset": "digits"}
    # 64*10 + 10, then 10*10 + 10, LayerNorms 2 * 2 * 10, head 10*10 + 10
    assert parameter_count("mlp", mlp) == 650 + 110 + 40 + 110
    mlp |= {"batch_size": 8, "total_steps": 128}
    flops = 6 * 910 * 8 * 128 + 2 * 910 * 300 * (128 // 64 + 1)  # digits: 300 to evaluate
    assert estimated_seconds("mlp", mlp) == pytest.approx(128 * 6e-4 + flops / 2e10)
    gpt = {"n_embd": 32, "n_layer": 2, "block_size": 16}
    assert parameter_count("gpt", gpt) == 2 * 12 * 32 * 32 + (65 + 16) * 32
    assert parameter_count("quadratic", {"dim": 8}) == 9


def test_mlp_options_build_the_model_they_name():
    trainee = make_trainee(
        "mlp", dataset="digits", hidden=16, depth=2, activation="tanh", norm="layer"
    )
    trainee.reset(0)
    layers = [type(m) for m in trainee.model]
    assert layers == [
        nn.Flatten,
        nn.Linear,
        nn.LayerNorm,
        nn.Tanh,
        nn.Linear,
        nn.LayerNorm,
        nn.Tanh,
        nn.Linear,
    ]
    # 64 -> 16 (+LN) -> 16 (+LN) -> 10
    n = sum(p.numel() for p in trainee.model.parameters())
    assert n == (64 * 16 + 16) + 2 * 16 + (16 * 16 + 16) + 2 * 16 + (16 * 10 + 10)
    default = make_trainee("mlp", dataset="digits", hidden=16)
    default.reset(0)
    assert [type(m) for m in default.model] == [nn.Flatten, nn.Linear, nn.ReLU, nn.Linear]
    with pytest.raises(ValueError, match="activation"):
        make_trainee("mlp", dataset="digits", activation="swish")


def tiny_images() -> ImageDataset:
    x = np.arange(2 * 16, dtype=np.uint8).reshape(2, 1, 4, 4) * 8
    y = np.array([0, 1])
    return ImageDataset("tiny", x, y, x, y, x, y, 2, 0.5, 0.25)


def test_derived_datasets_by_hand():
    data = tiny_images()
    small = downsampled(data, 2, "tiny_2")
    # the top-left 2x2 block of image 0 holds 0, 8, 32, 40: mean 20
    assert small.train_x.shape == (2, 1, 2, 2) and small.train_x[0, 0, 0, 0] == 20
    pixels = small.train_x.astype(np.float64) / 255
    assert small.mean == pytest.approx(pixels.mean()) and small.std == pytest.approx(pixels.std())
    with pytest.raises(ValueError, match="factor=3"):
        downsampled(data, 3, "bad")
    shuffled = permuted(data, "tiny_p")
    flat, out = data.train_x.reshape(2, -1), shuffled.train_x.reshape(2, -1)
    order = [int(np.flatnonzero(flat[0] == v)[0]) for v in out[0]]  # pixel values are distinct
    assert sorted(order) == list(range(16)) and order != list(range(16))
    np.testing.assert_array_equal(out[1], flat[1][order])  # one order for every image
    np.testing.assert_array_equal(permuted(data, "again").train_x, shuffled.train_x)


def quadratic_task() -> SampledTask:
    options = {"dim": 4, "noise": 0.1, "problem_seed": 7, "batch_size": 16, "total_steps": 64}
    return SampledTask("quadratic-000", "quadratic", options | {"window": 64} | dict(CADENCE))


def test_tuning_gives_the_argmin_inside_the_grid_and_the_table_round_trips(tmp_path):
    backend = LocalBackend(1, 1)
    try:
        (row,) = tune_tasks([quadratic_task()], tmp_path / "tune", backend, progress=False)
    finally:
        backend.close()
    means = {t["lr"]: t["mean_final_val_loss"] for t in row["table"]}
    assert all(t["n"] == 3 for t in row["table"])  # the three tuning seeds
    assert row["reference_lr"] == min(means, key=means.get)
    assert not row["at_edge"] or row["widened"] == 3
    assert row["grid"][0] < row["reference_lr"] < row["grid"][-1] or row["at_edge"]
    # a table must be the draw it says it is
    with pytest.raises(ValueError, match="not sampler v1's draw of seed 0, n 1"):
        reference_table(0, 1, [row], command="x", commit="y")


def test_a_mixture_of_sampled_tasks_is_one_the_recipe_reads(tmp_path):
    tasks = sample_tasks(11, 3)
    rows = [
        {
            "name": t.name,
            "family": t.family,
            "env_id": t.env_id,
            "options": {k: list(v) if isinstance(v, tuple) else v for k, v in t.options.items()},
            "reference_lr": 0.01 * (i + 1),
            "at_edge": False,
            "widened": 0,
            "grid": [],
            "table": [],
            "median_run_seconds": None,
        }
        for i, t in enumerate(tasks)
    ]
    table = reference_table(11, 3, rows, command="python scripts/sample_tasks.py", commit="abc")
    path = write_json(tmp_path / "table.json", table)
    assert read_table(path) == table
    for observation in ("v0", "v1"):
        mix = write_json(
            tmp_path / f"{observation}.json", mixture(table, observation, table_path="t")
        )
        loaded = load_tasks(mix)
        assert [t.name() for t in loaded] == [t.name for t in tasks]
        assert [t.reference_lr for t in loaded] == [0.01, 0.02, 0.03]
        assert all(t.env_id.endswith(observation) for t in loaded)
    table["sampler_version"] = 0
    write_json(path, table)
    with pytest.raises(ValueError, match="sampler v0's table"):
        read_table(path)


@needs_real_data("mnist")
def test_sampled_tasks_share_a_v1_main_envs_spaces_and_cadence(tmp_path):
    tasks = sample_tasks(0, 12)
    chosen = {next(t.name for t in tasks if t.family == f) for f in ("quadratic", "mlp")}
    rows = [
        {"name": t.name, "family": t.family, "options": dict(t.options), "reference_lr": 0.01}
        | {"at_edge": False}
        for t in tasks
    ]
    table = reference_table(0, 12, rows, command="", commit="")
    mix = write_json(tmp_path / "m.json", mixture(table, "v1", table_path="t"))
    further = [m for m in load_tasks(mix) if m.name() in chosen]
    main = {"dataset": "digits", "total_steps": 256, **CADENCE}
    env = gym.make("LRSchedule-MLP-v1", **main)
    check_tasks(further, env, "LRSchedule-MLP-v1", main, 1.0)  # raises on another space
    assert len(further) == 2
