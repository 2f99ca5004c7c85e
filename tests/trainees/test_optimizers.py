"""The optimizer option: AdamW as before, Schedule-Free's train/eval switching, Prodigy."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trainees import MLPConfig, QuadraticConfig, make_trainee
from trainees.batched import make_batched_trainee
from trainees.optimizers import OPTIMIZERS, make_optimizer

DIGITS = dict(dataset="digits", batch_size=32)


def mlp(optimizer: str | None = None):
    options = DIGITS if optimizer is None else DIGITS | {"optimizer": optimizer}
    return make_trainee("mlp", **options)


def params(trainee) -> list[torch.Tensor]:
    return [p.detach().clone() for p in trainee.model.parameters()]


def test_explicit_adamw_is_bit_identical_to_the_default():
    runs = []
    for trainee in (mlp(), mlp("adamw")):
        trainee.reset(5)
        stats = [trainee.train_step(3e-3) for _ in range(20)]
        assert type(trainee.optimizer) is torch.optim.AdamW
        runs.append(([s.loss for s in stats], [s.grad_norm for s in stats], params(trainee)))
    (loss_a, norm_a, final_a), (loss_b, norm_b, final_b) = runs
    assert loss_a == loss_b and norm_a == norm_b
    assert all(torch.equal(p, q) for p, q in zip(final_a, final_b, strict=True))
    assert loss_a[-1] < 0.5 * loss_a[0]  # it trained


def test_each_name_builds_its_optimizer_with_the_decay_groups():
    p2, p1 = torch.nn.Parameter(torch.zeros(2, 2)), torch.nn.Parameter(torch.zeros(2))
    kinds = {}
    for name in OPTIMIZERS:
        groups = [{"params": [p2], "weight_decay": 0.1}, {"params": [p1], "weight_decay": 0.0}]
        opt = make_optimizer(name, groups, 0.5, betas=(0.8, 0.9))
        kinds[name] = type(opt).__name__
        assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
        assert [(g["lr"], g["betas"]) for g in opt.param_groups] == [(0.5, (0.8, 0.9))] * 2
    assert kinds == {
        "adamw": "AdamW",
        "adamw_fused": "AdamW",
        "schedulefree": "AdamWScheduleFree",
        "prodigy": "Prodigy",
    }
    assert make_optimizer("adamw_fused", [{"params": [p1]}], 0.5).defaults["fused"] is True
    assert not make_optimizer("adamw", [{"params": [p1]}], 0.5).defaults["fused"]  # torch's default
    sf = make_optimizer("schedulefree", [{"params": [p1]}], 0.5)
    assert sf.param_groups[0]["warmup_steps"] == 0
    assert make_optimizer("prodigy", [{"params": [p1]}], 1.0).param_groups[0]["decouple"]


def test_unknown_optimizer_names_the_valid_ones():
    with pytest.raises(
        ValueError, match=r"optimizer='sgd'.*\('adamw', 'adamw_fused', 'schedulefree', 'prodigy'\)"
    ):
        MLPConfig(optimizer="sgd")
    with pytest.raises(ValueError, match=r"optimizer='lion'.*'prodigy'"):
        make_trainee("quadratic", optimizer="lion")
    with pytest.raises(
        ValueError, match="unknown optimizer 'sgd'; valid: adamw, adamw_fused, schedulefree"
    ):
        make_optimizer("sgd", [{"params": [torch.nn.Parameter(torch.zeros(1))]}], 0.1)


def averaged_weights(trainee) -> list[torch.Tensor]:
    """Schedule-Free's x from its state, as its docs define it: y = (1 - beta1) z + beta1 x."""
    beta1, state = trainee.config.betas[0], trainee.optimizer.state
    return [
        ((p.detach().double() - (1 - beta1) * state[p]["z"].double()) / beta1).float()
        for p in trainee.model.parameters()
    ]


def val_loss(trainee, model) -> float:
    total, count = 0.0, 0
    with torch.no_grad():
        for x, y in trainee.eval_batches():
            total += float(F.cross_entropy(model(x), y, reduction="sum"))
            count += len(x)
    return total / count


def test_schedule_free_evaluates_the_averaged_weights():
    trainee = mlp("schedulefree")
    trainee.reset(1)
    for _ in range(15):
        trainee.train_step(3e-3)
    model = copy.deepcopy(trainee.model).eval()  # y, the weights it trains at
    at_y = val_loss(trainee, model)
    with torch.no_grad():
        for q, x in zip(model.parameters(), averaged_weights(trainee), strict=True):
            q.copy_(x)
    at_x = val_loss(trainee, model)
    assert trainee.evaluate() == pytest.approx(at_x, rel=1e-6)
    assert abs(at_x - at_y) > 1e-3  # the switch matters: y scores otherwise


def test_schedule_free_evaluations_leave_training_bit_identical():
    def run(evaluate_every_step: bool):
        trainee = mlp("schedulefree")
        trainee.reset(2)
        stats, vals = [], []
        for i in range(30):
            stats.append(trainee.train_step(3e-3 * min(1.0, (i + 1) / 5)))  # warm-up by the env
            if evaluate_every_step:
                vals.append(trainee.evaluate())
        trainee._train_mode()  # back to y, as the next train_step would put it
        return [s.loss for s in stats], [s.grad_norm for s in stats], params(trainee), vals

    loss_a, norm_a, final_a, vals = run(True)
    loss_b, norm_b, final_b, _ = run(False)
    assert loss_a == loss_b and norm_a == norm_b
    assert all(torch.equal(p, q) for p, q in zip(final_a, final_b, strict=True))
    assert vals[-1] < 0.5 * vals[0]


def test_after_an_evaluation_schedule_free_trains_from_y():
    trainee = mlp("schedulefree")
    trainee.reset(3)
    for _ in range(10):
        trainee.train_step(3e-3)
    seen = []
    trainee.model.register_forward_pre_hook(
        lambda m, args: (
            seen.append([p.detach().clone() for p in m.parameters()]) if m.training else None
        )
    )
    y = params(trainee)
    trainee.evaluate()
    x = params(trainee)
    assert not trainee.model.training
    assert max(float((a - b).abs().max()) for a, b in zip(x, y, strict=True)) > 1e-4
    trainee.train_step(3e-3)
    assert trainee.model.training and len(seen) == 1
    assert all(torch.equal(a, b) for a, b in zip(seen[0], y, strict=True))


def test_prodigy_trains_at_base_lr_one():
    trainee = mlp("prodigy")
    trainee.reset(0)
    val0 = trainee.evaluate()
    losses = [trainee.train_step(1.0).loss for _ in range(40)]
    assert np.mean(losses[-5:]) < 0.3 * np.mean(losses[:5])
    assert trainee.evaluate() < 0.3 * val0
    assert trainee.optimizer.param_groups[0]["d"] > 1e3 * 1e-6  # its step size grew from d0


def test_every_trainee_option_builds_its_optimizer_and_steps():
    kinds = {
        "adamw": "AdamW",
        "adamw_fused": "AdamW",
        "schedulefree": "AdamWScheduleFree",
        "prodigy": "Prodigy",
    }
    for name in OPTIMIZERS:
        trainee = make_trainee("quadratic", optimizer=name)
        assert trainee.config == QuadraticConfig(optimizer=name)
        trainee.reset(0)
        assert type(trainee.optimizer).__name__ == kinds[name]
        before = params(trainee)
        assert trainee.train_step(0.05).finite
        moved = [not torch.equal(p, q) for p, q in zip(before, params(trainee), strict=True)]
        assert all(moved)


def test_the_batched_trainee_is_adamw_only():
    with pytest.raises(ValueError, match=r"optimizer='schedulefree' has no batched form"):
        make_batched_trainee("mlp", 2, dataset="digits", optimizer="schedulefree")
    assert make_batched_trainee("quadratic", 2, optimizer="adamw").n == 2
