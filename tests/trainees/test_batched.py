"""The batched trainee: K models in one vmapped step, each equal to its single run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import needs_real_data
from trainees import make_trainee
from trainees.batched.adamw import BatchedAdamW
from trainees.batched.grouped import GroupedLinearStack, grouped_product
from trainees.batched.trainee import BATCHED_TRAINEES, BatchedTrainee, make_batched_trainee
from trainees.torch_trainee import TorchTrainee

SEEDS = [11, 12, 13]


def lr_sequence(n_steps: int, k: int, low: float, high: float) -> np.ndarray:
    """``(n_steps, k)`` log-uniform learning rates, a different sequence per model."""
    rng = np.random.default_rng(0)
    return np.exp(rng.uniform(np.log(low), np.log(high), (n_steps, k)))


def run_single(name: str, options: dict, seed: int, lrs: np.ndarray):
    trainee = make_trainee(name, **options)
    trainee.reset(seed)
    stats = [trainee.train_step(float(lr)) for lr in lrs]
    return stats, trainee.evaluate()


@pytest.mark.parametrize(
    ("name", "options", "lr_range"),
    [
        ("mlp", dict(dataset="digits", batch_size=32), (1e-4, 3e-2)),
        ("mlp", dict(dataset="digits", batch_size=32, optimizer="adamw_fused"), (1e-4, 3e-2)),
        pytest.param("mlp", dict(dataset="mnist"), (1e-4, 3e-2), marks=needs_real_data("mnist")),
        ("quadratic", {}, (1e-4, 0.1)),
    ],
)
def test_each_model_follows_its_single_run(name, options, lr_range):
    n_steps = 200
    lrs = lr_sequence(n_steps, len(SEEDS), *lr_range)
    batched = make_batched_trainee(name, len(SEEDS), **options)
    for k, seed in enumerate(SEEDS):
        batched.reset(k, seed)
    steps = [batched.train_step(lrs[i]) for i in range(n_steps)]
    val = batched.evaluate()
    assert batched.steps_done.tolist() == [n_steps] * len(SEEDS)
    for k, seed in enumerate(SEEDS):
        single, single_val = run_single(name, options, seed, lrs[:, k])
        # the gradients are bit-identical (the same products, the same AdamW kernel), so
        # the runs are: their float32 norms are equal, and pooled in float64 on the host
        # (K models at once) they differ by that summation order alone (1e-16); only the
        # mean of the minibatch losses is summed in another float32 order
        np.testing.assert_allclose(
            np.array([s[k].grad_norms for s in steps]),
            np.array([s.grad_norms for s in single]),
            rtol=1e-12,
        )
        np.testing.assert_allclose(
            [s[k].grad_norm for s in steps], [s.grad_norm for s in single], rtol=1e-12
        )
        np.testing.assert_allclose([s[k].loss for s in steps], [s.loss for s in single], rtol=1e-6)
        assert val[k] == pytest.approx(single_val, rel=1e-6)


def test_under_autocast_each_model_follows_its_single_run(monkeypatch):
    # on a GPU the trainees autocast to bfloat16; CPU autocast takes the same code path
    # (the batched backward pass once failed there: bfloat16 gradients, float32 weights)
    monkeypatch.setattr(
        TorchTrainee, "_autocast", lambda self: torch.autocast("cpu", dtype=torch.bfloat16)
    )
    n_steps, options = 30, dict(dataset="digits", batch_size=32)
    lrs = lr_sequence(n_steps, len(SEEDS), 1e-4, 3e-2)
    batched = make_batched_trainee("mlp", len(SEEDS), **options)
    for k, seed in enumerate(SEEDS):
        batched.reset(k, seed)
    steps = [batched.train_step(lrs[i]) for i in range(n_steps)]
    val = batched.evaluate()
    for k, seed in enumerate(SEEDS):
        single, single_val = run_single("mlp", options, seed, lrs[:, k])
        np.testing.assert_allclose(
            np.array([s[k].grad_norms for s in steps]),
            np.array([s.grad_norms for s in single]),
            rtol=1e-12,
        )
        np.testing.assert_allclose([s[k].loss for s in steps], [s.loss for s in single], rtol=1e-6)
        assert val[k] == pytest.approx(single_val, rel=1e-6)


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(5, 3)  # a 2-D weight (decayed) and a 1-D bias (not decayed)


@pytest.mark.parametrize("fused", [True, False])
def test_batched_adamw_equals_torch_adamw_per_model(fused):
    k, n_steps, wd, betas = 3, 60, 0.1, (0.9, 0.95)
    gen = torch.Generator().manual_seed(0)
    nets = [TinyNet() for _ in range(k)]
    for net in nets:
        for p in net.parameters():
            p.data = torch.randn(p.shape, generator=gen)
    refs = [
        torch.optim.AdamW(
            [
                {"params": [net.fc.weight], "weight_decay": wd},
                {"params": [net.fc.bias], "weight_decay": 0.0},
            ],
            betas=betas,
            fused=fused,
        )
        for net in nets
    ]
    flat = torch.stack(
        [torch.cat([p.detach().flatten() for p in net.parameters()]) for net in nets]
    )
    decayed = torch.tensor([True] * 15 + [False] * 3)
    opt = BatchedAdamW(flat, decayed, wd, betas=betas, fused=fused)
    lrs = lr_sequence(n_steps, k, 1e-3, 1e-1)
    for i in range(n_steps):
        # model 1 skips every third step (as a diverged step does): its state must not move
        index = np.array([0, 2]) if i % 3 == 0 else np.arange(k)
        grads = torch.randn(flat.shape, generator=gen)
        for j in index:
            for group in refs[j].param_groups:
                group["lr"] = float(lrs[i, j])
            nets[j].fc.weight.grad = grads[j, :15].view(3, 5).clone()
            nets[j].fc.bias.grad = grads[j, 15:].clone()
            refs[j].step()
        # the gradients as rows, or as one tensor per parameter (as the trainee passes them)
        rows = grads[index]
        opt.step([rows[:, :15].view(-1, 3, 5), rows[:, 15:]] if i % 2 else rows, lrs[i], index)
    for j, net in enumerate(nets):
        want = torch.cat([p.detach().flatten() for p in net.parameters()])
        torch.testing.assert_close(flat[j], want, rtol=1e-6, atol=1e-6)
        if fused:  # the same kernel on the same numbers: bit-identical
            assert torch.equal(flat[j], want)
    assert opt.steps.tolist() == [n_steps, n_steps - n_steps // 3, n_steps]


def test_a_diverging_model_leaves_the_others_untouched():
    # weight decay 1 at lr 1e3: the weights are multiplied by 1 - 1e3 each step (overflow
    # within a few steps); at lr 1 they are zeroed and the model keeps training
    options = dict(weight_decay=1.0, base_lr=1.0)
    n_steps = 30
    lrs = np.tile([1e3, 1.0, 0.5], (n_steps, 1))
    batched = make_batched_trainee("quadratic", 3, **options)
    for k, seed in enumerate(SEEDS):
        batched.reset(k, seed)
    steps = [batched.train_step(lrs[i]) for i in range(n_steps)]
    finite0 = [s[0].finite for s in steps]
    assert finite0[0] and not all(finite0), "model 0 should diverge within the run"
    for k in (1, 2):
        assert all(s[k].finite for s in steps)
        single, _ = run_single("quadratic", options, SEEDS[k], lrs[:, k])
        np.testing.assert_allclose(
            [s[k].loss for s in steps], [s.loss for s in single], rtol=1e-5, atol=1e-6
        )


def test_inactive_models_draw_no_batch_and_do_not_move():
    batched = make_batched_trainee("quadratic", 2)
    batched.reset(0, 1)
    batched.reset(1, 2)
    before = batched.weights[1].clone()
    for _ in range(5):
        out = batched.train_step([0.05, 0.05], [True, False])
        assert out[1] is None and out[0] is not None
    assert batched.steps_done.tolist() == [5, 0]
    assert torch.equal(batched.weights[1], before)
    # model 1 starts now and follows its single run from the beginning
    stats = [batched.train_step([0.05, 0.05])[1] for _ in range(3)]
    single, _ = run_single("quadratic", {}, 2, np.full(3, 0.05))
    np.testing.assert_allclose([s.loss for s in stats], [s.loss for s in single], rtol=1e-5)


def test_slot_has_the_trainee_interface():
    batched = make_batched_trainee("quadratic", 2)
    slot = batched.slot(1)
    slot.reset(3)
    stats = [slot.train_step(0.05) for _ in range(4)]
    single, single_val = run_single("quadratic", {}, 3, np.full(4, 0.05))
    np.testing.assert_allclose([s.loss for s in stats], [s.loss for s in single], rtol=1e-5)
    assert slot.evaluate() == pytest.approx(single_val, rel=1e-5)
    assert (slot.steps_done, slot.total_steps, slot.base_lr) == (4, 200, 0.05)
    assert (slot.name, slot.options) == ("quadratic", {})


def test_bad_input_is_named():
    with pytest.raises(
        ValueError, match=r"'resnet18' has no batched form; batched: quadratic, mlp"
    ):
        make_batched_trainee("resnet18", 2)
    with pytest.raises(ValueError, match="n=0 is invalid"):
        make_batched_trainee("quadratic", 0)
    batched = make_batched_trainee("quadratic", 2)
    with pytest.raises(RuntimeError, match=r"reset\(k, seed\)"):
        batched.train_step([0.1, 0.1])
    batched.reset(0, 0)
    batched.reset(1, 0)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        batched.train_step([0.1])
    with pytest.raises(ValueError, match="lr=nan is invalid"):
        batched.train_step([0.1, float("nan")])
    with pytest.raises(IndexError, match="valid: 0 to 1"):
        batched.slot(2)
    assert set(BATCHED_TRAINEES) == {"quadratic", "mlp"}


def test_a_model_without_a_grouped_form_is_refused():
    with pytest.raises(
        ValueError, match=r"layer 0 \(Conv2d\) has no grouped form; supported: nn.Linear"
    ):
        GroupedLinearStack(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()))
    with pytest.raises(ValueError, match="ResNet18Trainee's model has buffers"):
        BatchedTrainee(make_trainee("resnet18", dataset="digits"), 2)


@pytest.mark.parametrize("shapes", [((64, 10), (64, 128)), ((64, 128), (64, 784))])
def test_grouped_products_round_as_the_per_model_products(shapes):
    # (K, B, out) output gradients and (K, B, in) inputs of a layer, as in its backward;
    # MKL's batched kernel rounds the small one differently from torch.mm
    (b, n_out), (_, n_in) = shapes
    gen = torch.Generator().manual_seed(0)
    gy, x = torch.randn(4, b, n_out, generator=gen), torch.randn(4, b, n_in, generator=gen)
    w, bias = torch.randn(4, n_out, n_in, generator=gen), torch.randn(4, n_out, generator=gen)
    for _ in range(2):  # the first call compares the two forms, the second uses the choice
        gw = grouped_product("mm", gy.transpose(1, 2), x)
        out = grouped_product("addmm", bias, x, w.transpose(1, 2))
        for k in range(4):
            assert torch.equal(gw[k], gy[k].t().mm(x[k]))
            assert torch.equal(out[k], torch.nn.functional.linear(x[k], w[k], bias[k]))
