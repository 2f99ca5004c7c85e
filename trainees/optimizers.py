"""The optimizers a trainee can train with, built by name, and the step size each took.

``adamw`` is ``torch.optim.AdamW`` (its default, for-loop form on a CPU). ``adamw_fused``
is the same update in its fused form (``fused=True``: one kernel per parameter group and
step, faster; it rounds a few operations differently, so a seeded run does not
reproduce the ``adamw`` one's losses exactly).
``schedulefree`` is Schedule-Free AdamW (Defazio et al., 2024): it trains at one point
``y`` and evaluates at the average ``x``, so the trainee switches it with
``optimizer.train()`` / ``optimizer.eval()``. ``prodigy`` is Prodigy (Mishchenko &
Defazio, 2024), Adam with an estimated step size ``d``: its learning rate multiplies
``d``, so 1.0 is its intended value.

What a user picks when they cannot tune the learning rate (``trainees.lr_free``,
``trainees.hypergradient``):

- ``dadapt_adam``: D-Adaptation Adam (Defazio & Mishchenko, 2023), like Prodigy an Adam
  whose learning rate multiplies an estimated step size ``d``: 1.0 is its intended value.
- ``dog`` / ``ldog``: DoG and layer-wise L-DoG (Ivgi et al., 2023). These are SGD, not Adam:
  the step is ``-η g`` with ``η = lr · (max distance moved) / √(Σ ‖g‖²)`` (per layer for
  L-DoG); 1.0 is the intended learning rate. As in the package, each parameter group is
  a block of its own (the trainee's decayed weights and the rest get an ``η`` each).
  Weight decay is L2, added to the gradient (the package's only form); ``betas`` do not
  apply. The authors pair DoG with iterate averaging, which is not used here.
- ``mechanic_adamw``: Mechanic (Cutkosky et al., 2023) tuning a scale ``s`` of AdamW's
  updates, ``x = x_ref + s · Σ updates``; the learning rate is AdamW's, as usual.
- ``adam_hd``: Adam-HD (Baydin et al., 2018), Adam whose step size descends its
  hypergradient, starting from the env's learning rate and kept as a factor on it
  (``trainees.hypergradient.AdamHD`` says how it composes with a schedule).

The env sets every group's ``lr`` before each step; all of them read it at each step.
Weight decay is decoupled (AdamW's) in all but DoG and L-DoG.
"""

from __future__ import annotations

import math
from typing import Any, Literal, get_args

import torch

import trainees.lr_free as lr_free
from trainees.hypergradient import AdamHD

OptimizerName = Literal[
    "adamw",
    "adamw_fused",
    "schedulefree",
    "prodigy",
    "dadapt_adam",
    "dog",
    "ldog",
    "mechanic_adamw",
    "adam_hd",
]
OPTIMIZERS: tuple[str, ...] = get_args(OptimizerName)

# The options ``make_optimizer`` passes on, by optimizer: each sets its initial estimate.
# d0: D-Adaptation's / Prodigy's first d (the packages' default: 1e-6, a start from below);
#     d · lr is the step size of their Adam update (moments without bias correction), which
#     compares with an Adam learning rate once the moments have warmed up.
# reps_rel: DoG's first movement, relative: r_ε = reps_rel · (1 + ‖x_0‖) (default 1e-6;
#     the authors suggest 1e-4 for models with batch normalization).
# hypergrad_lr: Adam-HD's β (default trainees.hypergradient.HYPERGRAD_LR, 1e-7).
OPTIMIZER_OPTIONS: dict[str, tuple[str, ...]] = {
    "prodigy": ("d0",),
    "dadapt_adam": ("d0",),
    "dog": ("reps_rel",),
    "ldog": ("reps_rel",),
    "adam_hd": ("hypergrad_lr",),
}


def make_optimizer(
    name: str,
    groups: list[dict[str, Any]],
    lr: float,
    *,
    betas: tuple[float, float] = (0.9, 0.999),
    **options: float,
) -> torch.optim.Optimizer:
    """The optimizer ``name`` over the parameter ``groups`` (each with its weight decay).

    Schedule-Free gets no warm-up of its own: the env's learning rate already is the
    schedule (it reads ``group["lr"]`` every step). ``options`` are the optimizer's initial
    estimates named in ``OPTIMIZER_OPTIONS`` (e.g. ``d0=1e-3`` for ``dadapt_adam``); the
    authors' defaults otherwise.

    Raises:
        ValueError: an unknown optimizer name, naming the valid ones, or an option the
            optimizer does not take, naming the ones it does.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}")
    valid = OPTIMIZER_OPTIONS.get(name, ())
    if unknown := sorted(set(options) - set(valid)):
        raise ValueError(
            f"optimizer {name!r} takes no option {', '.join(unknown)}; "
            f"valid: {', '.join(valid) or 'none'}"
        )
    if name == "adamw":  # torch's default form (for-loop on a CPU, foreach on a GPU)
        return torch.optim.AdamW(groups, lr=lr, betas=betas)
    if name == "adamw_fused":
        return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=True)
    if name == "adam_hd":
        return AdamHD(groups, lr=lr, betas=betas, **options)
    # imported on use: a run with AdamW needs none of these packages
    if name == "schedulefree":
        import schedulefree

        return schedulefree.AdamWScheduleFree(groups, lr=lr, betas=betas, warmup_steps=0)
    if name == "prodigy":
        return lr_free.Prodigy(groups, lr=lr, betas=betas, decouple=True, **options)
    if name == "dadapt_adam":
        return lr_free.DAdaptAdam(groups, lr=lr, betas=betas, decouple=True, **options)
    if name == "dog":
        return lr_free.DoG(groups, lr=lr, **options)
    if name == "ldog":
        return lr_free.LDoG(groups, lr=lr, **options)
    return lr_free.MechanicAdamW(groups, lr=lr, betas=betas)  # mechanic_adamw


def effective_lrs(optimizer: torch.optim.Optimizer) -> list[float]:
    """The step size each parameter took at the last step, in ``param_groups`` order.

    The number that multiplies the optimizer's normalised direction: for the Adam family
    ``Δθ = -size · m̂ / (√v̂ + ε)`` (D-Adaptation and Prodigy: their own d-weighted
    moments, without bias correction by default), for DoG ``Δθ = -size · g``. Per optimizer:
    AdamW, its ``lr``; Schedule-Free, its ``lr`` (its ``scheduled_lr``); Prodigy and
    D-Adaptation, ``d · lr`` with the ``d`` that step used; DoG, its ``η``; L-DoG, each
    layer's ``η``; Mechanic, ``s · lr`` (the scale of AdamW's updates: ``x = x_ref + s ·
    Σ updates``); Adam-HD, its adapted step size. NaN before the first step.
    """
    sizes: list[float] = []
    for group in optimizer.param_groups:
        n = len(group["params"])
        if "eta" in group:  # DoG, L-DoG: eta is the step just taken
            sizes += [float(eta) for eta in group["eta"]]
        elif not any(optimizer.state.get(p) for p in group["params"]):  # no step yet
            sizes += [math.nan] * n
        elif "step_size" in group:  # recorded by the step (trainees.lr_free, AdamHD)
            sizes += [float(group["step_size"])] * n
        else:  # AdamW, Schedule-Free: the env's lr, as it was set for that step
            sizes += [float(group.get("scheduled_lr", group["lr"]))] * n
    return sizes


def effective_lr(optimizer: torch.optim.Optimizer) -> float:
    """The step size the last step took (see ``effective_lrs``): the one every parameter
    took, or, where they differ (L-DoG, groups at different rates), their mean weighted
    by parameter count. NaN before the first step."""
    sizes = effective_lrs(optimizer)
    if all(size == sizes[0] for size in sizes):
        return sizes[0]
    counts = [p.numel() for group in optimizer.param_groups for p in group["params"]]
    return math.fsum(s * n for s, n in zip(sizes, counts, strict=True)) / sum(counts)
