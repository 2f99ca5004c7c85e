"""The task sampler: reproducible from its seed, never a held-out workload, and its tables."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from common.files import write_json
from evaluation.backends import LocalBackend
from evaluation.suite import TrainingTask, check_held_out, held_out
from experiments.task_cost import (
    MAX_RUN_SECONDS,
    estimated_seconds,
    multiply_adds,
    parameter_count,
)
from experiments.task_mixture import check_tasks, load_tasks
from experiments.task_sampler import (
    CADENCE,
    FAMILIES,
    FAMILIES_BY_VERSION,
    SampledTask,
    jsonable_options,
    mixture,
    read_table,
    reference_table,
    sample_tasks,
    tune_tasks,
)
from tests.conftest import needs_real_data
from trainees import make_trainee
from trainees.data.images import ImageDataset, downsampled, permuted
from trainees.language import stdlib_lm_sha256

ROOT = Path(__file__).resolve().parents[2]


def test_the_same_seed_draws_the_same_tasks_and_another_seed_others():
    a, b = sample_tasks(3, 30), sample_tasks(3, 30)
    assert a == b
    assert sample_tasks(3, 10) == a[:10]  # a longer draw extends a shorter one
    c = sample_tasks(4, 30)
    assert [t.options for t in c] != [t.options for t in a]
    assert {t.family for t in a} == set(FAMILIES)  # every family in 30 draws
    assert len({tuple(sorted(t.options.items())) for t in a}) == 30


def test_a_versions_draws_never_change_and_versions_draw_apart():
    # v1's committed table (the recipe's training tasks) is still v1's draw of seed 0
    table = read_table(ROOT / "experiments/tasks/sampler_v1_s0_n24.json")
    assert table["sampler_version"] == 1 and len(table["tasks"]) == 24
    v1 = sample_tasks(0, 24, version=1)
    assert [t.name for t in v1] == [row["name"] for row in table["tasks"]]
    assert {t.family for t in v1} == set(FAMILIES_BY_VERSION[1])  # no CNN in v1
    v2 = sample_tasks(0, 24)  # the latest version by default
    assert v2 == sample_tasks(0, 24, version=2) and v2 != v1
    with pytest.raises(ValueError, match="sampler version=3 is invalid; valid: 1, 2"):
        sample_tasks(0, 1, version=3)
    # seeds 0-4 x 30 tasks of v1, as the code before v2 existed drew them (d469288)
    draws = [
        [t.name, t.family, jsonable_options(t.options)]
        for s in range(5)
        for t in sample_tasks(s, 30, 1)
    ]
    digest = hashlib.sha256(json.dumps(draws, sort_keys=True).encode()).hexdigest()
    assert digest == "0ee40297610a10bd236b03072393f3a916da04fbc3b02b32aa6f2bb835c5e8e3"


@pytest.mark.parametrize("version", [1, 2])
def test_no_draw_is_held_out_and_every_task_runs_at_one_cadence(version):
    tasks = [t for seed in range(20) for t in sample_tasks(seed, 25, version)]
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
    for family, share in FAMILIES_BY_VERSION[version].items():
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
    with pytest.raises(ValueError, match="family='rnn'"):
        SampledTask("x", "rnn", {})
    with pytest.raises(ValueError, match="observation='v2'"):
        sample_tasks(0, 1)[0].env_id_for("v2")


def test_the_cost_model_by_hand():
    mlp = {"hidden": 10, "depth": 2, "norm": "layer", "dataset": "digits"}
    # 64*10 + 10, then 10*10 + 10, LayerNorms 2 * 2 * 10, head 10*10 + 10
    assert parameter_count("mlp", mlp) == 650 + 110 + 40 + 110
    mlp |= {"batch_size": 8, "total_steps": 128, "eval_every": 64}
    flops = 6 * 910 * 8 * 128 + 2 * 910 * 300 * (128 // 64 + 1)  # digits: 300 to evaluate
    assert estimated_seconds("mlp", mlp) == pytest.approx(128 * 6e-4 + flops / 2e10)
    gpt = {"n_embd": 32, "n_layer": 2, "block_size": 16}
    assert parameter_count("gpt", gpt) == 2 * 12 * 32 * 32 + (65 + 16) * 32
    assert parameter_count("gpt", gpt | {"dataset": "python_stdlib"}) == (
        2 * 12 * 32 * 32 + (256 + 16) * 32  # bytes: 256 tokens
    )
    assert parameter_count("quadratic", {"dim": 8}) == 9
    cnn = {"dataset": "mnist_14", "channels": 4, "depth": 2, "norm": "none"}
    # conv 1->4 at 14x14, conv 4->8 at 7x7, head 8->10
    macs = 14 * 14 * 9 * 1 * 4 + 7 * 7 * 9 * 4 * 8 + 8 * 10
    assert multiply_adds("cnn", cnn) == macs
    assert multiply_adds("mlp", mlp) == parameter_count("mlp", mlp)  # dense: one per weight
    cnn |= {"batch_size": 8, "total_steps": 128, "eval_every": 64}
    flops = 6 * macs * 8 * 128 + 2 * macs * 1000 * (128 // 64 + 1)
    assert estimated_seconds("cnn", cnn) == pytest.approx(128 * 3e-3 + flops / 1e10)


def test_the_cost_models_multiply_adds_are_the_models_own():
    """Counted on the built models with forward hooks: a convolution's output elements
    times its inputs per output (in channels x 3 x 3), a linear layer's weights."""

    def counted(trainee, x: torch.Tensor) -> int:
        total = 0

        def hook(module, inputs, output):
            nonlocal total
            if isinstance(module, nn.Conv2d):
                per_output = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
                total += output[0].numel() * per_output
            elif isinstance(module, nn.Linear):
                total += (
                    module.in_features
                    * module.out_features
                    * (output[0].numel() // module.out_features)
                )

        handles = [m.register_forward_hook(hook) for m in trainee.model.modules()]
        trainee.model(x)
        for h in handles:
            h.remove()
        return total

    for options in (
        {"dataset": "digits", "channels": 4, "depth": 3, "norm": "batch"},
        {"dataset": "mnist_14", "channels": 8, "depth": 2, "norm": "none"},
    ):
        trainee = make_trainee("cnn", **options)
        trainee.reset(0)
        side = 8 if options["dataset"] == "digits" else 14
        x = torch.zeros(1, 1, side, side)
        assert counted(trainee, x) == multiply_adds("cnn", options)
    with pytest.raises(ValueError, match="dataset='enwik8' is invalid for a sampled GPT"):
        parameter_count("gpt", {"n_embd": 32, "n_layer": 1, "block_size": 8, "dataset": "enwik8"})


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_the_cnn_of_a_draw_has_the_weights_the_cost_model_counts(norm):
    options = {"dataset": "digits", "channels": 4, "depth": 3, "norm": norm}
    trainee = make_trainee("cnn", **options, activation="gelu")
    trainee.reset(0)
    assert sum(p.numel() for p in trainee.model.parameters()) == parameter_count("cnn", options)
    convs = [m for m in trainee.model.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1, 4), (4, 8), (8, 16)]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in trainee.model.modules()) == (
        3 if norm == "batch" else 0
    )
    assert trainee.model(torch.zeros(5, 1, 8, 8)).shape == (5, 10)
    with pytest.raises(ValueError, match="depth=4 is invalid; expected at most 3 for the 8x8"):
        make_trainee("cnn", dataset="digits", depth=4)
    with pytest.raises(ValueError, match="norm='layer'"):
        make_trainee("cnn", dataset="digits", norm="layer")


def test_a_cnn_task_trains_reproducibly_from_its_seed():
    def losses(seed: int) -> list[float]:
        trainee = make_trainee("cnn", dataset="digits", channels=4, norm="batch", batch_size=16)
        trainee.reset(seed)
        return [trainee.train_step(3e-3).loss for _ in range(8)] + [trainee.evaluate()]

    a = losses(1)
    assert a == losses(1) and a != losses(2)
    assert a[-2] < a[0]  # it learns


def test_the_gpt_reads_the_standard_librarys_sources_as_bytes():
    trainee = make_trainee(
        "gpt",
        dataset="python_stdlib",
        n_layer=1,
        n_embd=16,
        n_head=1,
        block_size=8,
        batch_size=2,
        eval_batches=1,
    )
    corpus = trainee.corpus
    assert corpus.vocab_size == 256 and corpus.name == "python_stdlib"
    assert len(corpus.train) + len(corpus.val) == 1_000_000  # STDLIB_LM_BYTES
    # the held-out 5% (whole modules) is cut in two: validation, then test
    assert len(corpus.val) == 50_000 and len(corpus.val_tokens) == len(corpus.test_tokens)
    with pytest.raises(ValueError, match="dataset='python_stdlib'"):
        make_trainee("lstm", dataset="python_stdlib")  # the GPT's only


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
    with pytest.raises(ValueError, match="not sampler v2's draw of seed 0, n 1"):
        reference_table(0, 1, [row], command="x", commit="y")


def test_a_mixture_of_sampled_tasks_is_one_the_recipe_reads(tmp_path, monkeypatch):
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
    # a table whose tasks read the standard library's text is tied to that text
    gpt = next(t for t in sample_tasks(0, 40) if t.options.get("dataset") == "python_stdlib")
    gpt_row = {"name": gpt.name, "options": jsonable_options(gpt.options)}
    assert "texts" not in table
    monkeypatch.setattr("experiments.task_sampler.sample_tasks", lambda *a, **k: [gpt])
    stdlib_table = reference_table(0, 1, [gpt_row], command="", commit="")
    assert stdlib_table["texts"] == {"python_stdlib": stdlib_lm_sha256()}
    stdlib_path = write_json(tmp_path / "stdlib.json", stdlib_table)
    assert read_table(stdlib_path) == stdlib_table
    monkeypatch.setattr("experiments.task_sampler.stdlib_lm_sha256", lambda: "another")
    with pytest.raises(ValueError, match=r"was tuned on the standard library text .* is another"):
        read_table(stdlib_path)
    monkeypatch.undo()
    table["sampler_version"] = 1  # another version's table: not v1's draw
    write_json(path, table)
    with pytest.raises(ValueError, match="not sampler v1's draw of seed 11"):
        read_table(path)
    table["sampler_version"] = 0
    write_json(path, table)
    with pytest.raises(ValueError, match="sampler v0's table; this code has versions 1, 2"):
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
