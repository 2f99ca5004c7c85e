"""Adam-HD: Adam whose learning rate adapts online by hypergradient descent.

Baydin, Cornish, Martínez Rubio, Schmidt & Wood, "Online Learning Rate Adaptation with
Hypergradient Descent", ICLR 2018 (arXiv:1703.04782), Algorithm "Adam-HD". No maintained
package holds it (pytorch-optimizer 4.1.0 has none; the authors' reference code,
github.com/gbaydin/hypergradient-descent, is not on PyPI and calls torch signatures since
deprecated), hence this implementation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

# The hypergradient learning rate beta the authors use for Adam-HD on logistic regression and
# the MNIST MLP (their run.sh, github.com/gbaydin/hypergradient-descent; 1e-8 on VGG/CIFAR-10,
# which is also their class default).
HYPERGRAD_LR = 1e-7


class AdamHD(torch.optim.Optimizer):
    """Adam-HD (Baydin et al., 2018) with AdamW's decoupled weight decay.

    Each step is AdamW's, ``θ_t = θ_{t-1} + alpha_t u_t`` with direction
    ``u_t = -m̂_t / (√v̂_t + ε) - λ θ_{t-1}`` (``λ``: the group's weight decay), at a step
    size that descends its own hypergradient ``h_t = ∇f(θ_{t-1}) · u_{t-1}``, the dot
    product of this step's gradient with the last step's direction over all parameters:
    ``alpha_t = alpha_{t-1} - β h_t``, ``β = hypergrad_lr``. (The authors' code takes one
    such step per tensor; the paper's algorithm, followed here, takes one per step.)

    How it composes with ``group["lr"]``, which the env sets before every step: the step
    size is a factor ``a`` (starting at 1) times that learning rate, ``alpha_t = lr_t a_t``,
    so the first step is taken at the env's learning rate. The hypergradient step applies
    to the last step size, and the schedule's change since then multiplies the result:
    ``alpha_t = (lr_t / lr_{t-1}) (alpha_{t-1} - β h_t)``. At a constant learning rate this
    is the paper's Adam-HD started from ``alpha_0 = lr``; under a schedule the schedule's
    shape is kept (a decay to 0 still ends at 0). A warm-up from near 0 magnifies the
    corrections made during it: the paper's setting, a constant learning rate, is the one
    to use. A step at ``lr = 0`` leaves ``a`` as it was. All groups share one factor (the
    trainee gives every group the same ``lr``), with the first group's ``hypergrad_lr``.

    ``group["lr_factor"]`` holds ``a``; ``group["step_size"]`` the last step's size. With
    ``hypergrad_lr=0`` it is ``torch.optim.AdamW`` (its for-loop form) bit for bit.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        hypergrad_lr: float = HYPERGRAD_LR,
    ) -> None:
        if not (math.isfinite(hypergrad_lr) and hypergrad_lr >= 0):
            raise ValueError(
                f"hypergrad_lr={hypergrad_lr!r} is invalid; expected a finite value >= 0"
            )
        if not all(0 <= b < 1 for b in betas):
            raise ValueError(f"betas={betas!r} are invalid; expected each in [0, 1)")
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            hypergrad_lr=hypergrad_lr,
            lr_factor=1.0,
            last_lr=0.0,  # the learning rate of the last step (0: none yet)
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """One Adam-HD step; ``closure`` re-evaluates the loss, as in ``torch.optim``."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        factor = self._adapted_factor()
        for group in self.param_groups:
            group["lr_factor"], group["last_lr"] = factor, group["lr"]
            group["step_size"] = group["lr"] * factor
            for p in group["params"]:
                if p.grad is not None:
                    self._step_param(p, group)
        return loss

    def _adapted_factor(self) -> float:
        """The factor ``a`` for this step: one hypergradient step on the last step size."""
        first = self.param_groups[0]
        factor, last_lr = first["lr_factor"], first["last_lr"]
        if last_lr <= 0:  # the first step, or one taken at lr 0: nothing to learn from
            return factor
        # h_t = g_t · u_{t-1} over every parameter, one host sync per step
        dots = [
            torch.dot(p.grad.flatten(), self.state[p]["direction"].flatten())
            for group in self.param_groups
            for p in group["params"]
            if p.grad is not None and "direction" in self.state[p]
        ]
        if not dots:
            return factor
        h = float(torch.stack(dots).sum())
        # a_t = (alpha_{t-1} - β h_t) / lr_{t-1}
        return factor - first["hypergrad_lr"] * h / last_lr

    def _step_param(self, p: torch.Tensor, group: dict[str, Any]) -> None:
        """AdamW's update of ``p`` at the group's step size (torch's arithmetic, in its order),
        keeping the direction ``u_t`` for the next hypergradient."""
        grad, state = p.grad, self.state[p]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        beta1, beta2 = group["betas"]
        alpha, decay = group["step_size"], group["weight_decay"]
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        state["step"] += 1
        step = float(state["step"])
        direction = p.mul(-decay) if decay != 0 else None  # -λ θ_{t-1}, before the decay
        if decay != 0:
            p.mul_(1 - alpha * decay)
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bias_correction1 = 1 - beta1**step
        denom = (exp_avg_sq.sqrt() / (1 - beta2**step) ** 0.5).add_(group["eps"])
        p.addcdiv_(exp_avg, denom, value=-alpha / bias_correction1)
        adam = exp_avg.div(denom).div_(-bias_correction1)  # -m̂_t / (√v̂_t + ε)
        state["direction"] = adam if direction is None else direction.add_(adam)
