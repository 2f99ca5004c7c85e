"""BatchedAdamW: the single trainee's AdamW (default or fused form) for K models at once, one learning rate per model."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch


class BatchedAdamW:
    """AdamW for K models whose weights are the rows of one ``(K, n)`` tensor.

    The update of ``torch.optim.AdamW`` (decoupled weight decay, no AMSGrad), applied to
    every model ``k`` with its own learning rate. A model left out of a step keeps its
    weights, moments and step count, as a single trainee's optimizer does when a
    diverged step skips ``optimizer.step()``. The two forms of ``torch.optim.AdamW``:

    - ``fused=False``, as its default form: eight elementwise kernels over all K rows at
      once, with the float32 operations and float64 scalars of its for-loop form
      (tested: equal to it to 1e-6; bit-identical in practice).
    - ``fused=True``, as ``torch.optim.AdamW(fused=True)``: per model and decay group,
      one call of the same fused kernel over views of the model's row, one pass over the
      weights, gradients and moments instead of eight (tested: bit-identical to it).

    Args:
        params: ``(K, n)`` weights, updated in place.
        decayed: ``(n,)`` bool, the weights that get decoupled weight decay.
        weight_decay: their decay.
        betas: the moment decay rates.
        eps: added to the denominator.
        fused: which form.
        sizes: the number of weights of each parameter, in column order; ``step`` takes
            the gradients as one ``(m, n)`` tensor or as one ``(m, *shape)`` tensor per
            parameter. Default: one parameter per run of ``decayed``.

    Raises:
        ValueError: shapes that do not match, or ``sizes`` that do not split ``n`` into
            parameters each wholly decayed or not.
    """

    def __init__(
        self,
        params: torch.Tensor,
        decayed: torch.Tensor,
        weight_decay: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        fused: bool = False,
        sizes: Sequence[int] | None = None,
    ) -> None:
        n = params.shape[-1]
        if params.dim() != 2 or decayed.shape != (n,):
            raise ValueError(
                f"params must be (K, n) and decayed (n,); got {tuple(params.shape)} "
                f"and {tuple(decayed.shape)}"
            )
        self.params, self.weight_decay = params, weight_decay
        self.betas, self.eps = betas, eps
        self.fused = fused
        flags = decayed.cpu().numpy().astype(bool) & bool(weight_decay)
        # the runs of decayed and undecayed columns (the vectorised form decays these)
        bounds = [0, *(np.flatnonzero(np.diff(flags)) + 1).tolist(), n]
        self._runs = [(a, b, bool(flags[a])) for a, b in itertools.pairwise(bounds)]
        # the parameters (the fused form's tensors), each wholly decayed or not
        if sizes is None:
            sizes = [b - a for a, b, _ in self._runs]
        ends = np.cumsum([int(size) for size in sizes]).tolist()
        self._blocks = list(itertools.pairwise([0, *ends]))
        if ends[-1:] != [n] or any(
            b <= a or flags[a:b].any() != flags[a:b].all() for a, b in self._blocks
        ):
            raise ValueError(
                f"sizes={list(sizes)!r} is invalid; expected positive sizes summing to n={n}, "
                "each parameter wholly decayed or not"
            )
        self.exp_avg = torch.zeros_like(params)
        self.exp_avg_sq = torch.zeros_like(params)
        self.steps = np.zeros(params.shape[0], dtype=np.int64)
        # as torch.optim.AdamW(fused=True): each model's step count as a float32 tensor
        self._step_counts = torch.zeros(params.shape[0], device=params.device)
        # the fused form, per model, per decay group: its weight decay, parameters, views
        # of its weights, moments and step count (built once: the kernel takes lists)
        groups = [
            (decay, [i for i, (a, _) in enumerate(self._blocks) if flags[a] == on])
            for decay, on in ((weight_decay, True), (0.0, False))
            if fused
        ]
        self._groups = [
            [
                (
                    decay,
                    blocks,
                    *(
                        [t[k, slice(*self._blocks[i])] for i in blocks]
                        for t in (params, self.exp_avg, self.exp_avg_sq)
                    ),
                    [self._step_counts[k]] * len(blocks),
                )
                for decay, blocks in groups
                if blocks
            ]
            for k in range(params.shape[0])
        ]

    def reset(self, k: int) -> None:
        """Fresh state for model ``k`` (zero moments, step 0)."""
        self.exp_avg[k].zero_()
        self.exp_avg_sq[k].zero_()
        self.steps[k] = 0
        self._step_counts[k] = 0

    @torch.no_grad()
    def step(
        self, grads: torch.Tensor | Sequence[torch.Tensor], lrs: np.ndarray, index: np.ndarray
    ) -> None:
        """One AdamW step of the models ``index`` (ascending), with their ``grads``.

        Args:
            grads: ``(len(index), n)`` gradients, models in ``index`` order, or one
                ``(len(index), *shape)`` tensor per parameter (see ``sizes``).
            lrs: ``(K,)`` learning rate of every model (only ``lrs[index]`` is used).
            index: the models that step; the others are untouched.
        """
        index = np.asarray(index, dtype=np.int64)
        lrs = np.asarray(lrs, dtype=np.float64)
        self.steps[index] += 1
        if not self.fused:
            if not isinstance(grads, torch.Tensor):
                grads = torch.cat([g.flatten(1) for g in grads], 1)
            self._vectorised_step(grads, lrs, index)
            return
        if isinstance(grads, torch.Tensor):
            blocks = [grads[:, a:b] for a, b in self._blocks]
        else:
            blocks = [g.flatten(1) for g in grads]
        if [g.shape[1] for g in blocks] != [b - a for a, b in self._blocks]:
            raise ValueError(
                f"gradients of {[g.shape[1] for g in blocks]} weights per model do not match "
                f"the parameters' sizes {[b - a for a, b in self._blocks]}"
            )
        self._step_counts.copy_(torch.from_numpy(self.steps))
        beta1, beta2 = self.betas
        for j, k in enumerate(index.tolist()):
            for decay, params, p, m, v, steps in self._groups[k]:
                torch._fused_adamw_(
                    p,
                    [blocks[i][j] for i in params],
                    m,
                    v,
                    [],
                    steps,
                    lr=float(lrs[k]),
                    beta1=beta1,
                    beta2=beta2,
                    weight_decay=decay,
                    eps=self.eps,
                    amsgrad=False,
                    maximize=False,
                )

    def _vectorised_step(self, grads: torch.Tensor, lrs: np.ndarray, index: np.ndarray) -> None:
        beta1, beta2 = self.betas
        steps = self.steps[index].astype(np.float64)
        lr = lrs[index]
        # the scalars torch.optim.AdamW computes in Python floats, per model, in float64,
        # then rounded to float32 as its kernels round a Python scalar
        step_sizes = lr / (1.0 - beta1**steps)
        decay, bias_correction2_sqrt = torch.as_tensor(
            np.stack([1.0 - lr * self.weight_decay, np.sqrt(1.0 - beta2**steps)]),
            dtype=self.params.dtype,
            device=self.params.device,
        )[:, :, None]
        everyone = len(index) == self.params.shape[0]
        p, m, v = self.params, self.exp_avg, self.exp_avg_sq
        if not everyone:  # update copies of the rows that step, then put them back
            rows = torch.as_tensor(index, device=p.device)
            p, m, v = p[rows], m[rows], v[rows]
        for a, b, decayed in self._runs:
            if decayed:
                p[:, a:b].mul_(decay)
        m.lerp_(grads, 1.0 - beta1)
        v.mul_(beta2).addcmul_(grads, grads, value=1.0 - beta2)
        denom = v.sqrt().div_(bias_correction2_sqrt).add_(self.eps)
        for j, size in enumerate(step_sizes.tolist()):  # addcdiv_ rounds a fused multiply-add
            p[j].addcdiv_(m[j], denom[j], value=-size)
        if not everyone:
            for full, part in ((self.params, p), (self.exp_avg, m), (self.exp_avg_sq, v)):
                full.index_copy_(0, rows, part)
