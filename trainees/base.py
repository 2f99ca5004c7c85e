"""The Trainee contract (``Trainee``, ``StepStats``) and its configuration (``TraineeConfig``).

A trainee is one training run of one model: ``reset(seed)`` starts it, each
``train_step(lr)`` is exactly one optimizer step (AdamW unless ``config.optimizer`` says
otherwise) at exactly ``lr``, ``evaluate()`` is the loss on a fixed validation subset.
Everything random comes from a private ``torch.Generator`` seeded by ``reset``; the
global RNGs are never drawn from.

``TorchTrainee.test_metrics()`` reports the final metrics on the test split. It is
computed on demand only, by whoever reports a finished run: the env never calls it, so
no reward or observation ever sees the test split, and calling it does not change the
run (no RNG draws, the training weights restored bit for bit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from common.checks import check as _check
from trainees.optimizers import OPTIMIZER_OPTIONS, OPTIMIZERS, OptimizerName

N_GRAD_BUCKETS = 4  # every trainee reports this many pooled gradient norms, shallow to deep


@dataclass(frozen=True)
class StepStats:
    """What one optimizer step reports.

    Attributes:
        loss: the minibatch training loss before the update.
        grad_norm: global L2 norm of the gradient before clipping.
        grad_norms: ``(N_GRAD_BUCKETS,)`` L2 norms of the gradient in depth buckets.
        finite: False when the loss or any gradient is NaN/inf; the update was then skipped.
        moments: ``(4, 1 + N_GRAD_BUCKETS)`` pooled ``‖g_t‖², ‖θ_t‖², ‖u_{t-1}‖²,
            g_t · u_{t-1}`` (``trainees.gradnorm.UpdateMoments``), for observation ``v1``;
            None unless the trainee was asked for them (``track_updates = k``: every
            ``k``-th step), and on the steps between.
    """

    loss: float
    grad_norm: float
    grad_norms: np.ndarray
    finite: bool
    moments: np.ndarray | None = None


@runtime_checkable
class Trainee(Protocol):
    """One training run of one model (see DESIGN.md, "Contracts").

    This is everything ``LRScheduleEnv`` reads from a trainee, so any object with these
    members can be trained through the env (``TorchTrainee`` is one implementation).
    Losses are non-negative (the reward bounds assume it). A trainee may also have
    ``generate(n_tokens)``; the env then reports inference tokens/s at episode end;
    ``name``/``options`` (what it was made from), which the env's signature then records;
    and ``test_metrics()``, which the env never calls (see ``TorchTrainee.test_metrics``).
    """

    @property
    def steps_done(self) -> int:
        """Optimizer steps taken since ``reset`` (diverged, skipped updates included)."""
        ...

    @property
    def total_steps(self) -> int:
        """Optimizer-step budget of one run."""
        ...

    @property
    def base_lr(self) -> float:
        """The reference learning rate that env actions multiply."""
        ...

    def reset(self, seed: int) -> None:
        """Fresh weights, optimizer state and data order, all from ``seed``."""
        ...

    def train_step(self, lr: float) -> StepStats:
        """Exactly one optimizer step at learning rate ``lr``."""
        ...

    def evaluate(self) -> float:
        """Loss on the fixed validation subset (deterministic)."""
        ...


@dataclass(frozen=True)
class TraineeConfig:
    """Options every trainee has.

    Attributes:
        total_steps: optimizer steps in one run.
        base_lr: reference learning rate.
        batch_size: training minibatch size.
        weight_decay: decoupled weight decay, applied to >=2-D weights only.
        betas: the optimizer's Adam betas.
        grad_clip: max global gradient norm (0 disables clipping).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or None for CUDA when available.
        optimizer: ``adamw`` (``torch.optim.AdamW``); ``adamw_fused`` (the same, with
            ``fused=True``: faster, rounded slightly differently); ``schedulefree`` (Schedule-Free
            AdamW, no warm-up of its own: the env's schedule is the warm-up; training
            steps at its point ``y``, ``evaluate()`` and ``test_metrics()`` use its
            averaged weights ``x``, with BatchNorm statistics gathered at ``y``, which
            schedulefree warns of); or ``prodigy`` (Prodigy, which estimates its step
            size: the learning rate multiplies that estimate, so ``base_lr=1.0`` is its
            intended use); or one of the tuning-free optimizers (``dadapt_adam``, ``dog``,
            ``ldog``, ``mechanic_adamw``, ``adam_hd``). See ``trainees.optimizers``.
        optimizer_options: the optimizer's initial estimates (``trainees.optimizers.
            OPTIMIZER_OPTIONS``: ``d0`` of Prodigy and D-Adaptation, ``reps_rel`` of DoG,
            ``hypergrad_lr`` of Adam-HD), as ``{name: value}`` or ``((name, value), ...)``;
            kept as a sorted tuple of pairs. Empty: the authors' defaults.
    """

    total_steps: int = 1000
    base_lr: float = 1e-3
    batch_size: int = 64
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0
    device: str | None = None
    optimizer: OptimizerName = "adamw"
    optimizer_options: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        pairs = dict(self.optimizer_options)  # a dict or pairs: one canonical form
        object.__setattr__(
            self, "optimizer_options", tuple(sorted((k, float(v)) for k, v in pairs.items()))
        )
        _check(self.total_steps >= 1, "total_steps", self.total_steps, "an integer >= 1")
        _check(math.isfinite(self.base_lr) and self.base_lr > 0, "base_lr", self.base_lr, "> 0")
        _check(self.batch_size >= 1, "batch_size", self.batch_size, "an integer >= 1")
        _check(self.weight_decay >= 0, "weight_decay", self.weight_decay, ">= 0")
        _check(all(0 <= b < 1 for b in self.betas), "betas", self.betas, "each in [0, 1)")
        _check(self.grad_clip >= 0, "grad_clip", self.grad_clip, ">= 0 (0 disables)")
        _check(self.optimizer in OPTIMIZERS, "optimizer", self.optimizer, f"one of {OPTIMIZERS}")
        valid = OPTIMIZER_OPTIONS.get(self.optimizer, ())
        for name, value in self.optimizer_options:
            _check(
                name in valid,
                "optimizer_options",
                dict(self.optimizer_options),
                f"options of optimizer {self.optimizer!r}: {', '.join(valid) or 'none'}",
            )
            _check(
                math.isfinite(value) and value > 0,
                f"optimizer_options[{name!r}]",
                value,
                "a finite number > 0",
            )
        if self.device is not None:
            try:
                torch.device(self.device)
            except RuntimeError as e:
                raise ValueError(
                    f"device={self.device!r} is not a torch device; valid: 'cpu', 'cuda', "
                    "'cuda:N' or None (CUDA when available)"
                ) from e


def resolve_device(name: str | None) -> torch.device:
    """``name`` as a device, or CUDA when available and CPU otherwise."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
