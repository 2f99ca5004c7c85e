"""The optimizer option: AdamW as before, Schedule-Free's train/eval switching, Prodigy, the
LR-free options and Adam-HD, each stepping with the step size it reports."""

from __future__ import annotations

import copy
import math
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trainees import MLPConfig, QuadraticConfig, make_trainee
from trainees.batched.trainee import make_batched_trainee
from trainees.optimizers import OPTIMIZERS, effective_lr, effective_lrs, make_optimizer

DIGITS = dict(dataset="digits", batch_size=32)
KINDS = {  # the class each name builds
    "adamw": "AdamW",
    "adamw_fused": "AdamW",
    "schedulefree": "AdamWScheduleFree",
    "prodigy": "Prodigy",
    "dadapt_adam": "DAdaptAdam",
    "dog": "DoG",
    "ldog": "LDoG",
    "mechanic_adamw": "MechanicAdamW",
    "adam_hd": "AdamHD",
}


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
        assert [g["lr"] for g in opt.param_groups] == [0.5, 0.5]
        if name not in ("dog", "ldog"):  # SGD: no betas
            assert [g["betas"] for g in opt.param_groups] == [(0.8, 0.9)] * 2
    assert kinds == KINDS
    assert make_optimizer("adamw_fused", [{"params": [p1]}], 0.5).defaults["fused"] is True
    assert not make_optimizer("adamw", [{"params": [p1]}], 0.5).defaults["fused"]  # torch's default
    sf = make_optimizer("schedulefree", [{"params": [p1]}], 0.5)
    assert sf.param_groups[0]["warmup_steps"] == 0
    assert make_optimizer("prodigy", [{"params": [p1]}], 1.0).param_groups[0]["decouple"]


def test_unknown_optimizer_names_the_valid_ones():
    every = "'adamw', 'adamw_fused', 'schedulefree', 'prodigy', 'dadapt_adam', 'dog', 'ldog', "
    with pytest.raises(
        ValueError, match=rf"optimizer='sgd'.*\({every}'mechanic_adamw', 'adam_hd'\)"
    ):
        MLPConfig(optimizer="sgd")
    with pytest.raises(ValueError, match=r"optimizer='lion'.*'prodigy'.*'adam_hd'"):
        make_trainee("quadratic", optimizer="lion")
    p = torch.nn.Parameter(torch.zeros(1))
    with pytest.raises(
        ValueError,
        match=r"unknown optimizer 'sgd'; valid: adamw, adamw_fused, schedulefree, prodigy, "
        r"dadapt_adam, dog, ldog, mechanic_adamw, adam_hd$",
    ):
        make_optimizer("sgd", [{"params": [p]}], 0.1)
    with pytest.raises(ValueError, match=r"optimizer 'adamw' takes no option d0; valid: none$"):
        make_optimizer("adamw", [{"params": [p]}], 0.1, d0=1e-3)
    with pytest.raises(ValueError, match=r"optimizer 'dog' takes no option d0; valid: reps_rel$"):
        make_optimizer("dog", [{"params": [p]}], 1.0, d0=1e-3)


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
    for name in OPTIMIZERS:
        trainee = make_trainee("quadratic", optimizer=name)
        assert trainee.config == QuadraticConfig(optimizer=name)
        trainee.reset(0)
        assert type(trainee.optimizer).__name__ == KINDS[name]
        before = params(trainee)
        assert trainee.train_step(0.05).finite
        moved = [not torch.equal(p, q) for p, q in zip(before, params(trainee), strict=True)]
        assert all(moved)


def test_the_batched_trainee_is_adamw_only():
    with pytest.raises(ValueError, match=r"optimizer='schedulefree' has no batched form"):
        make_batched_trainee("mlp", 2, dataset="digits", optimizer="schedulefree")
    assert make_batched_trainee("quadratic", 2, optimizer="adamw").n == 2


# --- the options for a user who cannot tune: each steps with the step size it reports ---

TARGET = torch.tensor([1.0, -2.0, 0.5])  # the minimum of f(θ) = ½‖θ - TARGET‖²
EPS = 1e-8  # every Adam here keeps torch's default


def take_step(opt: torch.optim.Optimizer, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of ``opt`` over its one parameter θ at learning rate ``lr`` (set as the env
    sets it), on ∇f(θ) = θ - TARGET; returns θ before and the gradient, in float64."""
    (theta,) = opt.param_groups[0]["params"]
    before, grad = theta.detach().clone(), theta.detach() - TARGET
    for group in opt.param_groups:
        group["lr"] = lr
    theta.grad = grad.clone()
    opt.step()
    return before.double(), grad.double()


def one_parameter(
    name: str, lr: float, *, betas: tuple[float, float] = (0.9, 0.999), **options: float
) -> torch.optim.Optimizer:
    """``name`` over θ = 0 in R^3, without weight decay."""
    theta = torch.nn.Parameter(torch.zeros(3))
    groups = [{"params": [theta], "weight_decay": 0.0}]
    return make_optimizer(name, groups, lr, betas=betas, **options)


def theta_of(opt: torch.optim.Optimizer) -> torch.Tensor:
    return opt.param_groups[0]["params"][0].detach().double()


def test_dadapt_adam_steps_with_the_step_size_it_reports():
    opt = one_parameter("dadapt_adam", 1.0, betas=(0.9, 0.99), d0=1e-3)
    m = v = torch.zeros(3, dtype=torch.float64)
    sizes = []
    for lr in (1.0, 0.5, 0.8, 0.8, 0.8, 0.8):  # the env's schedule, read at each step
        before, g = take_step(opt, lr)
        sizes.append(effective_lr(opt))
        # its moments, without bias correction (its default), weigh each gradient by its size
        m, v = 0.9 * m + 0.1 * sizes[-1] * g, 0.99 * v + 0.01 * g**2
        torch.testing.assert_close(theta_of(opt), before - m / (v.sqrt() + EPS), rtol=1e-6, atol=0)
    assert sizes[:2] == [1e-3, 0.5e-3]  # d = d0 until it has moved
    assert sizes[-1] / 0.8 > 2 * 1e-3  # then d grew


def test_prodigy_steps_with_the_step_size_it_reports():
    opt = one_parameter("prodigy", 1.0, betas=(0.9, 0.99), d0=1e-3)
    m = v = torch.zeros(3, dtype=torch.float64)
    sizes = []
    for lr in (1.0, 0.5, 0.8, 0.8, 0.8, 0.8):
        before, g = take_step(opt, lr)
        sizes.append(effective_lr(opt))
        d, d_next = sizes[-1] / lr, opt.param_groups[0]["d"]
        m, v = 0.9 * m + 0.1 * d * g, 0.99 * v + 0.01 * d**2 * g**2  # d-weighted moments
        expected = before - sizes[-1] * m / (v.sqrt() + d_next * EPS)
        torch.testing.assert_close(theta_of(opt), expected, rtol=1e-6, atol=0)
    assert sizes[:2] == [1e-3, 0.5e-3]
    assert sizes[-1] / 0.8 > 2 * 1e-3


@pytest.mark.parametrize("name", ["dog", "ldog"])
def test_dog_steps_with_the_step_sizes_it_reports(name):
    """DoG is SGD: Δθ = -η g, one η per group (DoG) or per parameter tensor (L-DoG)."""
    w, b = (
        torch.nn.Parameter(torch.tensor([[1.0, -1.0], [0.5, 2.0]])),
        torch.nn.Parameter(torch.zeros(2)),
    )
    opt = make_optimizer(name, [{"params": [w, b], "weight_decay": 0.0}], 1.0, reps_rel=1e-2)
    targets = (torch.tensor([[0.0, 1.0], [-1.0, 0.0]]), torch.tensor([3.0, -1.0]))
    assert math.isnan(effective_lr(opt))
    for step, lr in enumerate((1.0, 0.5, 0.8)):
        before = [p.detach().clone() for p in (w, b)]
        grads = [p.detach() - t for p, t in zip((w, b), targets, strict=True)]
        for group in opt.param_groups:
            group["lr"] = lr
        w.grad, b.grad = (g.clone() for g in grads)
        opt.step()
        etas = effective_lrs(opt)
        for p, p0, g, eta in zip((w, b), before, grads, etas, strict=True):
            torch.testing.assert_close(p.detach(), p0 - eta * g, rtol=1e-6, atol=1e-7)
        if step == 0:  # η_0 = lr · reps_rel (1 + ‖x_0‖) / ‖g_0‖, over its block
            blocks = [[(before[0], grads[0]), (before[1], grads[1])]]
            if name == "ldog":
                blocks = [[pair] for pair in blocks[0]]
            expected = [
                1e-2
                * (1 + math.sqrt(sum(float(x.square().sum()) for x, _ in block)))
                / math.sqrt(sum(float(g.square().sum()) for _, g in block) + 1e-8)
                for block in blocks
                for _ in block
            ]
            assert etas == pytest.approx(expected, rel=1e-6)
    assert (etas[0] == etas[1]) == (name == "dog")
    assert effective_lr(opt) == pytest.approx((4 * etas[0] + 2 * etas[1]) / 6)  # by count


def test_mechanic_steps_with_the_step_size_it_reports():
    """x = x_ref + s Σ AdamW updates: the reported s · lr times AdamW's direction, summed."""
    opt = one_parameter("mechanic_adamw", 0.1, betas=(0.9, 0.99))  # x_ref = 0
    m = v = total = torch.zeros(3, dtype=torch.float64)
    for t, lr in enumerate((0.1, 0.05, 0.08, 0.08), start=1):
        _, g = take_step(opt, lr)
        m, v = 0.9 * m + 0.1 * g, 0.99 * v + 0.01 * g**2
        direction = -(m / (1 - 0.9**t)) / ((v / (1 - 0.99**t)).sqrt() + EPS)
        total = total + lr * direction  # Σ of AdamW's updates at the env's lr
        size = effective_lr(opt)
        torch.testing.assert_close(theta_of(opt), size / lr * total, rtol=1e-5, atol=0)
    assert 0 < size < 1e-3 * lr  # s starts tiny (s_init = 1e-8) and grows from there


def test_adam_hd_steps_with_its_adapted_step_size():
    """Baydin et al.'s Adam-HD by hand, on the env's schedule:
    alpha_t = (lr_t / lr_{t-1}) (alpha_{t-1} - β g_t · u_{t-1})."""
    beta = 1e-2
    opt = one_parameter("adam_hd", 0.1, betas=(0.9, 0.99), hypergrad_lr=beta)
    m = v = torch.zeros(3, dtype=torch.float64)
    alpha, u, last_lr = 0.0, None, None
    for t, lr in enumerate((0.1, 0.1, 0.1, 0.05, 0.08), start=1):
        before, g = take_step(opt, lr)
        alpha = lr if u is None else lr / last_lr * (alpha - beta * float(g @ u))
        m, v = 0.9 * m + 0.1 * g, 0.99 * v + 0.01 * g**2
        u = -(m / (1 - 0.9**t)) / ((v / (1 - 0.99**t)).sqrt() + EPS)
        assert effective_lr(opt) == pytest.approx(alpha, rel=1e-6)
        torch.testing.assert_close(theta_of(opt), before + alpha * u, rtol=1e-6, atol=1e-7)
        last_lr = lr
        if t == 3:  # successive gradients agree: it raised its step size above the env's
            assert alpha > 1.1 * lr


def test_adam_hd_without_hypergradient_is_adamw_bit_for_bit():
    def run(name: str) -> list[torch.Tensor]:
        gen = torch.Generator().manual_seed(0)
        w, b = (
            torch.nn.Parameter(torch.randn(4, 3, generator=gen)),
            torch.nn.Parameter(torch.zeros(3)),
        )
        groups = [{"params": [w], "weight_decay": 0.1}, {"params": [b], "weight_decay": 0.0}]
        opt = make_optimizer(
            name, groups, 1e-2, **({"hypergrad_lr": 0.0} if name == "adam_hd" else {})
        )
        for i in range(8):
            for group in opt.param_groups:
                group["lr"] = 1e-2 * (1 + i % 3)
            w.grad, b.grad = torch.randn(4, 3, generator=gen), torch.randn(3, generator=gen)
            opt.step()
        return [w.detach(), b.detach()]

    assert all(torch.equal(p, q) for p, q in zip(run("adamw"), run("adam_hd"), strict=True))


def test_effective_lr_of_the_existing_options_is_the_envs_lr():
    for name in ("adamw", "schedulefree"):
        opt = one_parameter(name, 0.1)
        if name == "schedulefree":
            opt.train()
        assert math.isnan(effective_lr(opt))  # no step yet
        take_step(opt, 0.03)
        assert effective_lr(opt) == 0.03


NEW = {  # each new option at its intended learning rate, with its initial estimate set
    "dadapt_adam": (1.0, {}),
    "dog": (1.0, {"reps_rel": 1e-2}),
    "ldog": (1.0, {"reps_rel": 1e-2}),
    "mechanic_adamw": (0.1, {}),
    "adam_hd": (0.01, {"hypergrad_lr": 1e-2}),
}


@pytest.mark.parametrize("name", list(NEW))
def test_each_new_option_trains(name):
    lr, options = NEW[name]
    opt = one_parameter(name, lr, **options)
    losses = []
    for _ in range(60):  # a constant learning rate, their own setting
        theta = theta_of(opt)
        losses.append(0.5 * float((theta - TARGET.double()).square().sum()))
        take_step(opt, lr)
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < 0.25 * losses[0]
    if name == "adam_hd":  # it trained by raising its step size well above where it began
        assert effective_lr(opt) > 5 * lr


@pytest.mark.parametrize("name", list(NEW))
def test_each_new_option_pickles_mid_run(name):
    lr, options = NEW[name]
    opt = one_parameter(name, lr, **options)
    for _ in range(2):
        take_step(opt, lr)
    restored = pickle.loads(pickle.dumps(opt))
    assert effective_lr(restored) == effective_lr(opt)
    for o in (opt, restored):
        take_step(o, lr)
    assert torch.equal(theta_of(opt), theta_of(restored))
    assert effective_lr(restored) == effective_lr(opt)


@pytest.mark.parametrize(
    ("name", "options", "key"),
    [
        ("prodigy", {"d0": 0.02}, "d0"),
        ("dadapt_adam", {"d0": 0.02}, "d0"),
        ("dog", {"reps_rel": 1e-4}, "reps_rel"),
        ("adam_hd", {"hypergrad_lr": 1e-6}, "hypergrad_lr"),
    ],
)
def test_trainee_optimizer_options_reach_the_optimizer(name, options, key):
    trainee = make_trainee(
        "quadratic", total_steps=8, optimizer=name, base_lr=1.0, optimizer_options=options
    )
    assert trainee.config.optimizer_options == tuple(options.items())
    trainee.reset(0)
    trainee.train_step(1.0)
    group = trainee.optimizer.param_groups[0]
    assert group.get(key, getattr(trainee.optimizer, key, None)) == options[key]


def test_trainee_optimizer_options_are_checked_by_name_and_value():
    with pytest.raises(ValueError, match=r"expected options of optimizer 'adamw': none"):
        make_trainee("quadratic", optimizer_options={"d0": 1e-3})
    with pytest.raises(ValueError, match=r"optimizer_options\['d0'\]=-1.0 is invalid"):
        make_trainee("quadratic", optimizer="prodigy", optimizer_options={"d0": -1})
