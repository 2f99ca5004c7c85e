"""Pooled gradient norms: every trainee reports ``N_GRAD_BUCKETS`` norms of its gradient, shallow to deep, whatever its size."""

from __future__ import annotations

from typing import Any

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
        self,
        loss: torch.Tensor,
        params: list[nn.Parameter],
        norms: list[torch.Tensor] | None = None,
    ) -> tuple[float, np.ndarray, list[torch.Tensor]]:
        """The step's loss and pooled gradient norms, in one device-to-host transfer.

        Returns the loss, the pooled norms (``(1 + n_buckets,)``: global, then buckets;
        NaN/inf when the step diverged), and the per-parameter norm tensors (for clipping;
        ``norms`` when given, already computed by :meth:`parameter_norms`).
        """
        norms = self.parameter_norms(params) if norms is None else norms
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


def fraction_bucket_matrix(sizes: list[int], n_buckets: int = N_GRAD_BUCKETS) -> np.ndarray:
    """``(n_buckets, n_tensors)`` weights pooling tensors into buckets by parameter count.

    The parameters, flattened in depth order, are cut into ``n_buckets`` runs of equal
    count; entry ``(b, i)`` is the fraction of tensor ``i``'s elements that fall in run
    ``b``. Every bucket holds ``1 / n_buckets`` of the parameters, so none is empty: a
    tensor that spans several buckets is shared out by its share of each (its squared
    norms in proportion, as if spread evenly over its elements).

    Raises:
        ValueError: no tensors, or a tensor with no elements.
    """
    if not sizes or min(sizes) < 1:
        raise ValueError(
            f"sizes={sizes!r} is invalid; expected >= 1 tensor, each with >= 1 element"
        )
    edges = np.concatenate([[0.0], np.cumsum(np.asarray(sizes, dtype=np.float64))])
    cuts = np.linspace(0.0, edges[-1], n_buckets + 1)
    lo = np.maximum(edges[None, :-1], cuts[:-1, None])
    hi = np.minimum(edges[None, 1:], cuts[1:, None])
    return np.maximum(hi - lo, 0.0) / np.diff(edges)[None, :]


MOMENTS: tuple[str, ...] = ("grad_sq", "param_sq", "update_sq", "grad_dot_update")
# the moments before any update is measured: unit weights, no gradient, no update (an
# update-to-weight ratio of 0 and a cosine of 0)
NO_UPDATE = np.zeros((len(MOMENTS), 1 + N_GRAD_BUCKETS))
NO_UPDATE[1] = 1.0
NO_UPDATE.flags.writeable = False


class UpdateMoments:
    """Moments of the gradient, the weights and the last update, pooled, every ``every`` steps.

    The raw material of the dimensionless signals (observation ``v1``): read after
    ``backward()`` and before ``optimizer.step()``, they are, per tensor, ``‖g_t‖²``,
    ``‖θ_t‖²``, ``‖u_{t-1}‖²`` and ``g_t · u_{t-1}``, where ``u_{t-1} = θ_t - θ_{t-1}`` is
    the update the last optimizer step made (whatever the optimizer, clipping or weight
    decay did), pooled over all parameters and over :func:`fraction_bucket_matrix`'s
    buckets.

    They are measured at every ``every``-th read (the env and the scheduler pass the
    cadence's ``steps_per_action``: the last optimizer step of each action, the one the
    policy reads next), with a copy of the weights taken at the read before: per action,
    not per step, since each costs a few passes over the weights (about a third of an
    MLP-MNIST step). With ``every=1`` every step is measured, and the first, which has
    no update before it, has update moments 0. The values cross to the host with the
    loss (no extra host sync).
    """

    def __init__(
        self, params: list[nn.Parameter], n_buckets: int = N_GRAD_BUCKETS, *, every: int = 1
    ) -> None:
        if every < 1:
            raise ValueError(f"every={every!r} is invalid; expected an integer >= 1")
        sizes = [p.numel() for p in params]
        self.matrix = np.vstack(
            [np.ones((1, len(sizes))), fraction_bucket_matrix(sizes, n_buckets)]
        )
        self.every = every
        self.reads = 0
        self._last: list[torch.Tensor] | None = None  # θ at the read before a measured one

    def tensors(
        self, params: list[nn.Parameter], grad_norms: list[torch.Tensor]
    ) -> list[torch.Tensor] | None:
        """At a measured read, per-tensor ``‖θ_t‖, ‖u_{t-1}‖, -g_t · u_{t-1}`` (3 n
        scalars); else None. Takes the weights' copy the next measured read needs.

        ``grad_norms`` are the per-tensor gradient norms already read
        (:meth:`GradNormPool.parameter_norms`).
        """
        self.reads += 1
        measured = self.reads % self.every == 0
        keep = (self.reads + 1) % self.every == 0  # the next read is measured: keep θ_t
        if not (measured or keep):  # most steps: nothing to do (not even enter no_grad)
            return None
        with torch.no_grad():
            return self._measure(params, grad_norms, measured, keep)

    def _measure(
        self,
        params: list[nn.Parameter],
        grad_norms: list[torch.Tensor],
        measured: bool,
        keep: bool,
    ) -> list[torch.Tensor] | None:
        weights = [p.detach() for p in params]
        out = None
        if measured:
            param_norms = list(torch._foreach_norm(weights))
            back = self._last
            if back is None:  # no earlier read: no update yet
                zero = torch.zeros((), device=weights[0].device)
                out = [*param_norms, *([zero] * (2 * len(weights)))]
            else:
                torch._foreach_sub_(back, weights)  # θ_{t-1} - θ_t = -u_{t-1}
                update_norms = list(torch._foreach_norm(back))
                dots = [
                    torch.vdot(p.grad.reshape(-1), b.reshape(-1)) if p.grad is not None else n * 0
                    for p, b, n in zip(params, back, grad_norms, strict=True)
                ]
                out = [*param_norms, *update_norms, *dots]
        if keep:
            if self._last is None:
                self._last = [w.clone() for w in weights]
            else:
                torch._foreach_copy_(self._last, weights)
        return out

    def state_dict(self) -> dict[str, Any]:
        """The read count and the weights' copy (None before one): resuming needs them."""
        last = None if self._last is None else [t.clone() for t in self._last]
        return {"reads": self.reads, "weights": last}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Restore :meth:`state_dict` (None: as before the first read).

        Raises:
            ValueError: the copy's tensor count is not the parameters'.
        """
        state = state or {"reads": 0, "weights": None}
        weights = state["weights"]
        if weights is not None and len(weights) != self.matrix.shape[1]:
            raise ValueError(
                f"the snapshot holds {len(weights)} tensors; the parameters are "
                f"{self.matrix.shape[1]}"
            )
        self.reads = int(state["reads"])
        self._last = None if weights is None else [t.detach().clone() for t in weights]

    def pool(self, grad_norms: np.ndarray, values: np.ndarray) -> np.ndarray:
        """``(len(MOMENTS), 1 + n_buckets)`` float64 from host copies of the per-tensor
        gradient norms and of :meth:`tensors`: pooled, then the buckets shallow to deep."""
        n = len(grad_norms)
        per_tensor = np.stack(
            [
                np.square(grad_norms),
                np.square(values[:n]),
                np.square(values[n : 2 * n]),
                -values[2 * n :],
            ]
        )
        with np.errstate(invalid="ignore", over="ignore"):  # inf * 0 pooling a diverged step
            return per_tensor @ self.matrix.T


def read_step(
    pool: GradNormPool,
    moments: UpdateMoments | None,
    loss: torch.Tensor,
    params: list[nn.Parameter],
) -> tuple[float, np.ndarray, list[torch.Tensor], np.ndarray | None]:
    """One step's loss, pooled gradient norms and (with ``moments``) update moments.

    Everything crosses to the host in one transfer. Returns the loss, the pooled norms
    (as :meth:`GradNormPool.read`), the per-parameter gradient norm tensors (for
    clipping) and the pooled moments (:meth:`UpdateMoments.pool`) or None.
    """
    if moments is None:
        loss_value, pooled, norms = pool.read(loss, params)
        return loss_value, pooled, norms, None
    norms = GradNormPool.parameter_norms(params)
    extra = moments.tensors(params, norms)
    if extra is None:  # not a measured step
        loss_value, pooled, norms = pool.read(loss, params, norms)
        return loss_value, pooled, norms, None
    flat = [loss.detach().float().reshape(()), *norms, *(t.float() for t in extra)]
    summary = torch.stack(flat).cpu().numpy().astype(np.float64)
    n = len(norms)
    grads = summary[1 : 1 + n]
    return float(summary[0]), pool(grads), norms, moments.pool(grads, summary[1 + n :])
