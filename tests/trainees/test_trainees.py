"""The Trainee contract, checked on every trainee with small real or synthetic data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import needs_real_data
from tests.trainees.conftest import TEXT
from trainees import (
    N_GRAD_BUCKETS,
    GPTConfig,
    GPTTrainee,
    MLPConfig,
    MLPTrainee,
    QuadraticConfig,
    QuadraticTrainee,
    ResNet18Config,
    ResNet18Trainee,
    Trainee,
    make_trainee,
)
from trainees.data.chars import load_prepared, prepare_bytes


@pytest.fixture(scope="module")
def corpus_with_test(tmp_path_factory):
    """A corpus with a test split, as enwik8 and text8 have."""
    folder = tmp_path_factory.mktemp("corpus_with_test")
    prepare_bytes(TEXT.encode(), folder, (0.8, 0.1, 0.1))
    return load_prepared("enwik8", folder)


def build(name: str, corpus, **overrides):
    """A small instance of each trainee; ``lr`` is a sane learning rate for it."""
    if name == "quadratic":
        return QuadraticTrainee(QuadraticConfig(**overrides)), 0.05
    if name == "mlp":
        return MLPTrainee(MLPConfig(dataset="digits", batch_size=32, **overrides)), 3e-3
    if name == "resnet18":
        cfg = ResNet18Config(dataset="digits", batch_size=16, **overrides)
        return ResNet18Trainee(cfg), 1e-3
    return GPTTrainee(GPTConfig(preset="tiny", **overrides), corpus=corpus), 3e-3


NAMES = ["quadratic", "mlp", "resnet18", "gpt"]


@pytest.mark.parametrize("name", NAMES)
def test_loss_decreases(name, corpus):
    trainee, lr = build(name, corpus)
    assert isinstance(trainee, Trainee)
    trainee.reset(0)
    val0 = trainee.evaluate()
    losses = [trainee.train_step(lr).loss for _ in range(50)]
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:5])
    assert trainee.evaluate() < 0.8 * val0


@pytest.mark.parametrize("name", NAMES)
def test_train_step_sets_exactly_lr_in_every_group(name, corpus):
    trainee, _ = build(name, corpus)
    trainee.reset(0)
    for lr in (3.7e-4, 1.25e-3, 0.0):
        trainee.train_step(lr)
        assert [g["lr"] for g in trainee.optimizer.param_groups] == [lr] * len(
            trainee.optimizer.param_groups
        )
    assert trainee.steps_done == 3


def test_lr_is_applied_to_the_update():
    """Adam's first update has magnitude ~lr per weight: the LR really reaches the step."""
    trainee = QuadraticTrainee(QuadraticConfig(weight_decay=0.0))
    for lr in (1e-3, 2e-2):
        trainee.reset(0)
        before = trainee.model.weight.detach().clone()
        trainee.train_step(lr)
        delta = (trainee.model.weight.detach() - before).abs()
        torch.testing.assert_close(delta, torch.full_like(delta, lr), rtol=1e-4, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_bit_identical_other_seed_differs(name, corpus):
    trainee, lr = build(name, corpus)

    def run(seed):
        trainee.reset(seed)
        stats = [trainee.train_step(lr) for _ in range(5)]
        return [s.loss for s in stats], np.stack([s.grad_norms for s in stats]), trainee.evaluate()

    a, b, c = run(1), run(1), run(2)
    assert a[0] == b[0] and a[2] == b[2]
    np.testing.assert_array_equal(a[1], b[1])
    assert a[0] != c[0]


def test_global_rng_untouched_even_with_dropout(corpus):
    trainee = GPTTrainee(GPTConfig(preset="tiny", dropout=0.1), corpus=corpus)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    runs = []
    for _ in range(2):
        trainee.reset(7)
        runs.append([trainee.train_step(1e-3).loss for _ in range(3)])
    assert runs[0] == runs[1]  # dropout masks come from the private generator
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("name", NAMES)
def test_grad_norm_buckets_same_width(name, corpus):
    trainee, lr = build(name, corpus)
    trainee.reset(0)
    s = trainee.train_step(lr)
    assert s.grad_norms.shape == (N_GRAD_BUCKETS,) and s.finite
    assert np.all(s.grad_norms > 0)
    # buckets partition the parameters (or repeat them when there are fewer than buckets)
    assert np.sqrt(np.sum(s.grad_norms**2)) >= s.grad_norm * (1 - 1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_nan_reported_not_raised_and_update_skipped(name, corpus):
    trainee, lr = build(name, corpus)
    trainee.reset(0)
    first = next(trainee.model.parameters())
    with torch.no_grad():
        first.view(-1)[0] = float("nan")
    snapshot = [p.detach().clone() for p in trainee.model.parameters()]
    s = trainee.train_step(lr)
    assert not s.finite and not math.isfinite(s.loss)
    for p, q in zip(trainee.model.parameters(), snapshot, strict=True):
        torch.testing.assert_close(p.detach(), q, equal_nan=True)


@pytest.mark.parametrize("name", NAMES)
def test_evaluate_deterministic(name, corpus):
    trainee, lr = build(name, corpus)
    trainee.reset(0)
    trainee.train_step(lr)
    assert trainee.evaluate() == trainee.evaluate()


def test_model_shapes_are_the_standard_ones(corpus):
    resnet = ResNet18Trainee(ResNet18Config(dataset="digits"))
    resnet.reset(0)
    # torchvision-style ResNet-18 with a 1-channel 3x3 stem and 10 classes
    assert sum(p.numel() for p in resnet.model.parameters()) == 11_172_810
    gpt = GPTTrainee(GPTConfig(preset="tiny"), corpus=corpus)
    gpt.reset(0)
    assert gpt.model.lm_head.weight is gpt.model.wte.weight  # weight tying
    assert (len(gpt.model.blocks), gpt.model_config.n_embd, gpt.config.batch_size) == (4, 128, 12)
    small = GPTConfig(preset="small")
    assert (small.n_layer, small.n_head, small.n_embd, small.block_size) == (6, 6, 384, 256)
    assert (small.batch_size, small.dropout, small.betas) == (64, 0.2, (0.9, 0.99))


def test_generate_reproducible_tokens(corpus):
    gpt = GPTTrainee(GPTConfig(preset="tiny"), corpus=corpus)
    gpt.reset(3)
    a = gpt.generate(20, top_k=5)
    gpt.reset(3)
    b = gpt.generate(20, top_k=5)
    assert a.shape == (20,) and (a < corpus.vocab_size).all()
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: make_trainee("mamba"), "valid: quadratic, mlp, resnet18, gpt"),
        (lambda: make_trainee("mlp", hiden=3), r"unknown option\(s\) \['hiden'\]"),
        (
            lambda: MLPConfig(dataset="cifar"),
            r"dataset='cifar'.*\('mnist', 'digits', 'mnist_permuted', 'mnist_14'\)",
        ),
        (lambda: GPTConfig(preset="huge"), r"preset='huge'.*\('tiny', 'small'\)"),
        (lambda: GPTConfig(dataset="ptb"), r"dataset='ptb'.*shakespeare_char"),
        (lambda: QuadraticConfig(base_lr=-1.0), r"base_lr=-1.0 is invalid"),
        (lambda: MLPConfig(device="tpu9"), "not a torch device"),
    ],
)
def test_bad_config_is_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_lr_and_missing_reset():
    trainee = QuadraticTrainee()
    with pytest.raises(RuntimeError, match="reset"):
        trainee.train_step(0.1)
    trainee.reset(0)
    for lr in (float("nan"), -1.0, float("inf")):
        with pytest.raises(ValueError, match="lr="):
            trainee.train_step(lr)


@needs_real_data("mnist")
def test_mlp_learns_real_mnist():
    trainee = make_trainee("mlp", dataset="mnist")
    trainee.reset(0)
    val0 = trainee.evaluate()
    for _ in range(50):
        trainee.train_step(1e-3)
    assert trainee.evaluate() < 0.5 * val0


@needs_real_data("shakespeare_char", "input.txt")
def test_gpt_tiny_learns_real_shakespeare():
    trainee = make_trainee("gpt", preset="tiny")
    trainee.reset(0)
    for _ in range(50):
        trainee.train_step(1e-3)
    assert trainee.evaluate() < 2.9  # from ln(65) = 4.17 at initialisation


@pytest.mark.parametrize("name", ["mlp", "resnet18"])
def test_image_test_metrics_equal_a_hand_computation(name):
    overrides = {"width": 8} if name == "resnet18" else {}
    trainee, lr = build(name, None, **overrides)
    trainee.reset(0)
    for _ in range(20):
        trainee.train_step(lr)
    assert trainee._test is None  # nothing of the test split on the device before the call
    metrics = trainee.test_metrics()
    data = trainee.data
    x = (torch.tensor(data.test_x).float() / 255.0 - data.mean) / data.std
    y = torch.tensor(data.test_y)
    trainee.model.eval()
    with torch.no_grad():
        logits = trainee.model(x)
    accuracy = float((logits.argmax(1) == y).double().mean())
    assert set(metrics) == {"test_loss", "test_accuracy", "test_samples", "test_split"}
    assert metrics["test_samples"] == len(data.test_x) == 297
    assert metrics["test_split"] == "test"
    assert metrics["test_loss"] == pytest.approx(float(F.cross_entropy(logits, y)), rel=1e-5)
    assert metrics["test_accuracy"] == pytest.approx(accuracy, abs=1e-12)
    assert 0.2 < accuracy < 1.0  # trained: above chance (0.1)


@pytest.mark.parametrize(
    ("name", "optimizer"),
    [("quadratic", "adamw"), ("mlp", "adamw"), ("mlp", "schedulefree"), ("gpt", "adamw")],
)
def test_test_metrics_leave_the_run_unchanged(name, optimizer, corpus):
    def run(call: bool):
        trainee, lr = build(name, corpus, optimizer=optimizer)
        trainee.reset(4)
        losses = [trainee.train_step(lr).loss for _ in range(5)]
        if call:
            rng = torch.get_rng_state()
            metrics = trainee.test_metrics()
            assert torch.equal(torch.get_rng_state(), rng)
            assert metrics["test_samples"] > 0 and math.isfinite(metrics["test_loss"])
        losses += [trainee.train_step(lr).loss for _ in range(5)]
        return losses, [p.detach().clone() for p in trainee.model.parameters()]

    (with_call, final_a), (without, final_b) = run(True), run(False)
    assert with_call == without
    assert all(torch.equal(p, q) for p, q in zip(final_a, final_b, strict=True))


def gpt_loss_by_hand(trainee: GPTTrainee, tokens: np.ndarray) -> tuple[float, int]:
    """Summed loss / count over windows starting every block_size tokens (the last shorter)."""
    T = trainee.config.block_size
    total, count = 0.0, 0
    trainee.model.eval()
    with torch.no_grad():
        for start in range(0, len(tokens) - 1, T):
            w = torch.from_numpy(tokens[start : start + T + 1].astype(np.int64))
            logits = trainee.model(w[None, :-1])[0]
            total += float(F.cross_entropy(logits, w[1:], reduction="sum"))
            count += len(w) - 1
    return total / count, count


def test_gpt_test_metrics_cover_the_test_split(corpus_with_test):
    trainee = GPTTrainee(GPTConfig(preset="tiny"), corpus=corpus_with_test)
    trainee.reset(0)
    for _ in range(5):
        trainee.train_step(3e-3)
    metrics = trainee.test_metrics()
    tokens = np.asarray(corpus_with_test.test)
    loss, count = gpt_loss_by_hand(trainee, tokens)
    assert (len(tokens) - 1) // 64 == 10 and (len(tokens) - 1) % 64 == 7  # 10 windows + a tail
    assert metrics["test_split"] == "test"
    assert metrics["test_samples"] == count == len(tokens) - 1
    assert metrics["test_loss"] == pytest.approx(loss, rel=1e-5)
    assert metrics["test_bits_per_char"] == pytest.approx(loss / math.log(2), rel=1e-5)


def test_gpt_without_a_test_split_holds_out_the_second_half_of_val(corpus):
    assert corpus.test is None
    trainee = GPTTrainee(GPTConfig(preset="tiny"), corpus=corpus)
    trainee.reset(0)
    metrics = trainee.test_metrics()
    n, cut = len(corpus.val), len(corpus.val) // 2
    loss, count = gpt_loss_by_hand(trainee, np.asarray(corpus.val[cut:]))
    assert metrics["test_split"] == "test"
    assert metrics["test_samples"] == count == n - cut - 1
    windows, val, T = trainee._val_windows.cpu().numpy(), np.asarray(corpus.val), 64
    np.testing.assert_array_equal(windows[0], val[: T + 1])  # evaluate() spans val[:cut]
    np.testing.assert_array_equal(windows[-1], val[cut - T - 1 : cut])
    assert metrics["test_loss"] == pytest.approx(loss, rel=1e-5)
    assert metrics["test_loss"] == pytest.approx(math.log(corpus.vocab_size), rel=0.05)  # untrained


def test_quadratic_test_set_is_drawn_apart_from_the_problem_seed():
    trainee = QuadraticTrainee(QuadraticConfig(problem_seed=3))
    trainee.reset(0)
    metrics = trainee.test_metrics()
    gen = torch.Generator().manual_seed(3 + 2**32)  # problem_seed + TEST_SEED_OFFSET
    x = torch.randn(256, 8, generator=gen)
    y = x @ trainee._w_star + 0.1 * torch.randn(256, 1, generator=gen)
    with torch.no_grad():
        want = float(F.mse_loss(trainee.model(x), y))
    assert metrics == {
        "test_loss": pytest.approx(want, rel=1e-6),
        "test_samples": 256,
        "test_split": "test",
    }
    assert not torch.equal(x, trainee._val[0])  # not the validation set
    other = QuadraticTrainee(QuadraticConfig(problem_seed=3))
    other.reset(1)  # another run of the same problem: the same test set
    other.test_metrics()
    assert torch.equal(other._test[0], x) and torch.equal(other._test[1], y)
