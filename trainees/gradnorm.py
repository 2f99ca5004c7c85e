"""Pooled gradient norms: every trainee reports ``N_GRAD_BUCKETS`` norms of its gradient, shallow to deep, whatever its size."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from trainees.base import N_GRAD_BUCKETS


def bucket_matrix(n_params: int, n_buckets: int = N_GRAD_BUCKETS) -> np.ndarray:
    """``(n_buckets, n_params)`` 0/1 matrix pooling parameters (in depth order) into buckets.

    Parameters are split into ``n_buckets`` contiguous runs of nearly equal length; with
    fewer parameters than buckets, neighbouring buckets share a parameter.
    """
    m = np.zeros((n_buckets, n_params))
    for b in range(n_buckets):
        lo = b * n_params // n_buckets
        hi = max((b + 1) * n_params // n_buckets, lo + 1)
        m[b, lo:hi] = 1.0
    return m


class GradNormPool:
    """Pools per-parameter gradient norms into the global norm and depth-bucket norms.

    The one place where gradient norms become features: ``TorchTrainee`` and
    ``agents.scheduler.LearnedLRScheduler`` both use it, so a policy sees the same
    numbers in the env and in a user's own loop.
    """

    def __init__(self, n_params: int, n_buckets: int = N_GRAD_BUCKETS) -> None:
        # row 0 pools all parameters (the global norm), the others the depth buckets
        self.matrix = np.vstack([np.ones((1, n_params)), bucket_matrix(n_params, n_buckets)])

    @staticmethod
    def parameter_norms(params: list[nn.Parameter]) -> list[torch.Tensor]:
        """L2 norm of each parameter's gradient (0 for none), as ``clip_grad_norm_`` computes it."""
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        return list(torch._foreach_norm(grads))

    @staticmethod
    def clip_(params: list[nn.Parameter], norms: list[torch.Tensor], max_norm: float) -> None:
        """Scale the gradients exactly as ``clip_grad_norm_(params, max_norm)`` does.

        It reuses the per-parameter ``norms`` instead of computing them again, with the
        same operations as ``torch.nn.utils.clip_grad_norm_``, so a plain loop that calls
        it gets bit-identical weights (tested through the scheduler's equality test).
        """
        pairs = [(p.grad, n) for p, n in zip(params, norms, strict=True) if p.grad is not None]
        if not pairs:
            return
        total = torch.linalg.vector_norm(torch.stack([n for _, n in pairs]), 2.0)
        coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
        torch._foreach_mul_([g for g, _ in pairs], coef)

    def read(
        self, loss: torch.Tensor, params: list[nn.Parameter]
    ) -> tuple[float, np.ndarray, list[torch.Tensor]]:
        """The step's loss and pooled gradient norms, in one device-to-host transfer.

        Returns the loss, the pooled norms (``(1 + n_buckets,)``: global, then buckets;
        NaN/inf when the step diverged), and the per-parameter norm tensors (for clipping).
        """
        norms = self.parameter_norms(params)
        summary = torch.stack([loss.detach().float().reshape(()), *norms]).float().cpu().numpy()
        summary = summary.astype(np.float64)
        return float(summary[0]), self(summary[1:]), norms

    def __call__(self, norms: np.ndarray) -> np.ndarray:
        """``(..., 1 + n_buckets)`` float64: the global norm, then the buckets, shallow to deep.

        ``norms`` is ``(n_params,)``, or ``(K, n_params)`` for K models at once.
        """
        squares = np.square(np.asarray(norms, dtype=np.float64))
        if np.isfinite(squares).all():  # the common case skips errstate's cost (~10 us)
            return np.sqrt(squares @ self.matrix.T)
        with np.errstate(invalid="ignore", over="ignore"):  # inf * 0 pooling a diverged step
            return np.sqrt(squares @ self.matrix.T)
