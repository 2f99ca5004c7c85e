"""The held-out architectures: a small ViT on the digits and a character-level LSTM."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from trainees import make_trainee
from trainees.factory import HELDOUT_TRAINEES, TRAINEES
from trainees.image import ViTConfig, ViTTrainee
from trainees.language import LSTMConfig, LSTMTrainee
from trainees.models.vit import ViT

pytestmark = pytest.mark.usefixtures("one_thread")


def vit(**overrides) -> ViTTrainee:
    return ViTTrainee(ViTConfig(**({"dataset": "digits", "batch_size": 16} | overrides)))


def lstm(corpus, **overrides) -> LSTMTrainee:
    options = {"n_embd": 32, "block_size": 16, "batch_size": 4} | overrides
    return LSTMTrainee(LSTMConfig(**options), corpus=corpus)


def parameters(trainee) -> list[torch.Tensor]:
    return [p.detach().clone() for p in trainee.model.parameters()]


def test_vit_logits_shape_and_patch_count_by_hand():
    trainee = vit()
    trainee.reset(0)
    model = trainee.model
    x, y = trainee.next_batch(trainee._gen)
    assert x.shape == (16, 1, 8, 8) and y.shape == (16,) and model(x).shape == (16, 10)
    # 8x8 digits in 4x4 patches: 2 x 2 = 4 patches, and the class token
    assert model.n_patches == 4 and model.pos_embed.shape == (1, 5, 32)
    # a 4x4 kernel from 1 channel to 32, and a bias: 1 * 4 * 4 * 32 + 32
    assert sum(p.numel() for p in model.patch_embed.parameters()) == 544
    # MNIST's 28x28 in 4x4 patches: 7 x 7 = 49
    assert ViT(1, (28, 28), 10, patch=4, dim=8, depth=1, heads=2).n_patches == 49


def test_vit_parameter_count_by_hand():
    d, classes, blocks = 32, 10, 2
    per_block = (
        2 * 2 * d  # two LayerNorms
        + (d * 3 * d + 3 * d)  # qkv
        + (d * d + d)  # attention output projection
        + (d * 4 * d + 4 * d)  # MLP in
        + (4 * d * d + d)  # MLP out
    )
    want = (16 * d + d) + d + 5 * d + blocks * per_block + 2 * d + (d * classes + classes)
    trainee = vit()
    trainee.reset(0)
    assert sum(p.numel() for p in trainee.model.parameters()) == want == 26_538


def test_lstm_logits_shape_and_parameter_count_by_hand(corpus):
    trainee = lstm(corpus)
    trainee.reset(0)
    x, y = trainee.next_batch(trainee._gen)
    v, h, layers = corpus.vocab_size, 32, 2
    assert x.shape == y.shape == (4, 16)
    assert trainee.model(x).shape == (4, 16, v)
    # per layer 4 gates, each (h x (in + h)) weights and two biases; in = h here
    per_layer = 4 * (h * (h + h) + 2 * h)
    want = v * h + layers * per_layer + (h * v + v)  # embedding, LSTM, head
    assert sum(p.numel() for p in trainee.model.parameters()) == want


def test_defaults_are_the_documented_ones():
    v = ViTConfig()
    assert (v.patch, v.dim, v.depth, v.heads, v.batch_size) == (4, 32, 2, 2, 32)
    c = LSTMConfig()
    assert (c.n_layer, c.n_embd, c.block_size, c.batch_size, c.dropout) == (2, 128, 64, 12, 0.0)
    assert (c.weight_decay, c.betas, c.dataset) == (0.1, (0.9, 0.99), "shakespeare_char")
    assert set(HELDOUT_TRAINEES) == {"vit", "lstm"} and not set(HELDOUT_TRAINEES) & set(TRAINEES)


@pytest.mark.parametrize("name", ["vit", "lstm"])
def test_same_seed_bit_identical_other_seed_differs(name, corpus):
    trainee = vit() if name == "vit" else lstm(corpus)
    torch.manual_seed(123)
    rng = torch.get_rng_state()

    def run(seed):
        trainee.reset(seed)
        init = parameters(trainee)
        losses = [trainee.train_step(3e-3).loss for _ in range(4)]
        return init, losses, parameters(trainee), trainee.evaluate()

    a, b, c = run(1), run(1), run(2)
    assert all(torch.equal(p, q) for p, q in zip(a[0], b[0], strict=True))
    assert a[1] == b[1] and a[3] == b[3]
    assert all(torch.equal(p, q) for p, q in zip(a[2], b[2], strict=True))
    assert all(not torch.equal(p, q) for p, q in zip(a[0], c[0], strict=True) if p.std() > 0)
    assert a[1] != c[1]
    assert torch.equal(torch.get_rng_state(), rng)  # no draw from the global RNG


def test_lstm_with_dropout_is_reproducible_and_leaves_the_global_rng(corpus):
    trainee = lstm(corpus, dropout=0.2)
    assert trainee.uses_dropout
    torch.manual_seed(5)
    rng = torch.get_rng_state()
    runs = []
    for _ in range(2):
        trainee.reset(7)
        runs.append([trainee.train_step(3e-3).loss for _ in range(3)])
    assert runs[0] == runs[1]
    assert torch.equal(torch.get_rng_state(), rng)
    plain = lstm(corpus)  # the same seed without dropout: the same first weights
    plain.reset(7)
    assert [plain.train_step(3e-3).loss for _ in range(3)] != runs[0]  # dropout is on


@pytest.mark.parametrize(("name", "lr"), [("vit", 3e-3), ("lstm", 2e-2)])
def test_loss_decreases(name, lr, corpus):
    trainee = vit() if name == "vit" else lstm(corpus)
    trainee.reset(0)
    val0 = trainee.evaluate()
    losses = [trainee.train_step(lr).loss for _ in range(80)]
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:5])
    assert trainee.evaluate() < 0.8 * val0


def test_lstm_test_metrics_and_generation(corpus):
    trainee = lstm(corpus)
    trainee.reset(3)
    metrics = trainee.test_metrics()
    n = len(corpus.val)
    assert metrics["test_samples"] == n - n // 2 - 1  # the held-out second half of val
    assert metrics["test_loss"] == pytest.approx(math.log(corpus.vocab_size), rel=0.05)
    assert metrics["test_bits_per_char"] == pytest.approx(metrics["test_loss"] / math.log(2))
    a = trainee.generate(20, top_k=5)
    trainee.reset(3)
    b = trainee.generate(20, top_k=5)
    assert a.shape == (20,) and (a < corpus.vocab_size).all()
    np.testing.assert_array_equal(a, b)


def test_lstm_generate_carries_the_state(corpus):
    """Sampling from the carried state is sampling from the logits of the whole sequence."""
    trainee = lstm(corpus)
    trainee.reset(0)
    model = trainee.model.eval()
    prompt = torch.tensor([[1, 2, 3]])
    out = model.generate(prompt, 6, top_k=1)  # greedy
    logits = model(out[:, :-1])
    np.testing.assert_array_equal(out[0, 3:], logits[0, 2:].argmax(-1))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: ViTConfig(dim=30, heads=4), r"dim=30 is invalid; expected divisible by heads=4"),
        (lambda: ViTConfig(depth=0), r"depth=0 is invalid"),
        (lambda: ViTConfig(heads=0), r"heads=0 is invalid"),
        (lambda: ViTConfig(dataset="cifar"), r"dataset='cifar'"),
        (lambda: vit(patch=3), r"patch=3 is invalid; expected a divisor of both sides of the 8x8"),
        (lambda: ViT(1, (28, 28), 10, patch=8), r"image size 28x28 is not divisible by patch=8"),
        (lambda: LSTMConfig(n_layer=0), r"n_layer=0 is invalid"),
        (lambda: LSTMConfig(n_embd=-1), r"n_embd=-1 is invalid"),
        (lambda: LSTMConfig(block_size=0), r"block_size=0 is invalid"),
        (lambda: LSTMConfig(dropout=1.0), r"dropout=1.0 is invalid"),
        (lambda: LSTMConfig(dataset="ptb"), r"dataset='ptb'"),
        (lambda: make_trainee("lstm", n_head=4), r"unknown option\(s\) \['n_head'\]"),
        (lambda: make_trainee("lstm", preset="tiny"), r"unknown option\(s\) \['preset'\]"),
    ],
)
def test_bad_config_is_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_vit_env_runs_a_full_episode():
    env = gym.make("LRSchedule-ViT-v0", dataset="digits", total_steps=64)
    obs, _ = env.reset(seed=0)
    action = np.zeros(env.action_space.shape, env.action_space.dtype)  # the base LR
    done, steps = False, 0
    while not done:
        obs, reward, terminated, truncated, info = env.step(action)
        done, steps = terminated or truncated, steps + 1
        assert np.isfinite(obs).all() and math.isfinite(reward)
    assert terminated and not truncated
    assert env.unwrapped.trainee.steps_done == 64 and steps == 64 // 32
    assert math.isfinite(info["val_loss"]) and info["val_loss"] < math.log(10)
    env.close()
