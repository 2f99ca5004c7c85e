"""The optimizers a trainee can train with, built by name.

``adamw`` is ``torch.optim.AdamW`` (its default, for-loop form on a CPU). ``adamw_fused``
is the same update in its fused form (``fused=True``: one kernel per parameter group and
step, faster; it rounds a few operations differently, so a seeded run does not
reproduce the ``adamw`` one's losses exactly).
``schedulefree`` is Schedule-Free AdamW (Defazio et al., 2024): it trains at one point
``y`` and evaluates at the average ``x``, so the trainee switches it with
``optimizer.train()`` / ``optimizer.eval()``. ``prodigy`` is Prodigy (Mishchenko &
Defazio, 2024), Adam with an estimated step size ``d``: its learning rate multiplies
``d``, so 1.0 is its intended value.

The env sets every group's ``lr`` before each step; all of them read it at each step.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import torch

OptimizerName = Literal["adamw", "adamw_fused", "schedulefree", "prodigy"]
OPTIMIZERS: tuple[str, ...] = get_args(OptimizerName)


def make_optimizer(
    name: str,
    groups: list[dict[str, Any]],
    lr: float,
    *,
    betas: tuple[float, float] = (0.9, 0.999),
) -> torch.optim.Optimizer:
    """The optimizer ``name`` over the parameter ``groups`` (each with its weight decay).

    Weight decay is decoupled in all of them. Schedule-Free gets no warm-up of its own: the
    env's learning rate already is the schedule (it reads ``group["lr"]`` every step).

    Raises:
        ValueError: an unknown optimizer name, naming the valid ones.
    """
    if name == "adamw":  # torch's default form (for-loop on a CPU, foreach on a GPU)
        return torch.optim.AdamW(groups, lr=lr, betas=betas)
    if name == "adamw_fused":
        return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=True)
    # imported on use: a run with AdamW needs neither package
    if name == "schedulefree":
        import schedulefree

        return schedulefree.AdamWScheduleFree(groups, lr=lr, betas=betas, warmup_steps=0)
    if name == "prodigy":
        import prodigyopt

        return prodigyopt.Prodigy(groups, lr=lr, betas=betas, decouple=True)
    raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}")
