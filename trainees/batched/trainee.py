"""K independent training runs of one trainee in lockstep, as one vectorised step.

Small trainees spend much of a step on fixed costs: the MLP's optimizer step is ~1.3 ms
on a 2-core CPU, a third of it outside kernels (Python, dispatch, the autograd engine);
batching removes most of that, and some of the kernels' own time (measured by
``benchmarks.throughput.step_profile``; README, "Batched envs"). :class:`BatchedTrainee`
keeps the weights of K models of one architecture as the rows of one ``(K, n_weights)``
tensor and runs one optimizer step of all of them with a handful of batched kernels:
the forward pass as batched matrix products (the grouped form of a stack of
``nn.Linear`` layers), one backward pass, and :class:`BatchedAdamW` (the single
trainee's AdamW, in its default or fused form, with one learning rate per model).
Model ``k`` is trained exactly as the single trainee with the same seed would train it:

- its initial weights and data order come from its own replica of the single trainee
  (with its own ``torch.Generator``), seeded by ``reset(k, seed)``;
- its own learning rate at every step, its own AdamW state (with the single trainee's
  decoupled weight-decay groups), its own gradient clipping and pooled gradient norms;
- its own evaluation on the fixed validation subset;
- its own divergence: a model with a non-finite loss or gradient skips its update, as
  the single trainee does, and the others are untouched.

On a CPU its gradients and weights are bit-identical to the single run's (each product
rounds as the per-model product does, and the AdamW update as torch's); only its
minibatch loss is averaged in another order (tested over 200 steps: gradient norms
equal, losses to 1e-6 relative). :meth:`BatchedTrainee.slot` gives model ``k`` behind
the ``Trainee`` interface, which is how ``envs`` serves K episodes as one vector env.

``torch.func`` (``functional_call`` under ``vmap``) does the same for any model, but it
costs ~4 ms of Python per step here, more than the MLP's whole step: it was measured and
not kept (see README, "Batched trainees").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from trainees.base import StepStats
from trainees.batched.adamw import BatchedAdamW
from trainees.batched.grouped import GroupedLinearStack
from trainees.factory import make_trainee
from trainees.gradnorm import GradNormPool
from trainees.torch_trainee import TorchTrainee

# Trainees with a batched form: their models are stacks of nn.Linear layers and
# elementwise activations. ResNet-18 has none (convolutions, and BatchNorm statistics),
# nor GPT-tiny (attention; on a CPU it is compute-bound, so batching would not gain).
BATCHED_TRAINEES: tuple[str, ...] = ("quadratic", "mlp")


# The optimizers with a batched form: BatchedAdamW, in the two forms of torch's AdamW.
BATCHED_OPTIMIZERS: tuple[str, ...] = ("adamw", "adamw_fused")


class BatchedTrainee:
    """K training runs of one trainee, one vectorised optimizer step for all of them.

    Args:
        trainee: the single trainee; its K - 1 replicas share its (read-only) data. It
            must have ``batched_loss(outputs, y)`` and a model made of linear layers.
        n: K, the number of models.
        name, options: what the trainee was made from (kept for env signatures).

    Raises:
        ValueError: ``n < 1``, a trainee without a batched form, or an optimizer other
            than AdamW (``config.optimizer``), saying why.
    """

    def __init__(
        self,
        trainee: TorchTrainee,
        n: int,
        *,
        name: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        if n < 1:
            raise ValueError(f"n={n!r} is invalid; expected an integer >= 1")
        kind = type(trainee).__name__
        if trainee.config.optimizer not in BATCHED_OPTIMIZERS:
            raise ValueError(
                f"optimizer={trainee.config.optimizer!r} has no batched form (batched: "
                f"{', '.join(BATCHED_OPTIMIZERS)}); train {kind} without batching instead"
            )
        if not hasattr(trainee, "batched_loss"):
            raise ValueError(f"{kind} has no batched_loss, so no batched form")
        with torch.device("meta"):
            skeleton = trainee.build_model()
        if any(True for _ in skeleton.buffers()):
            raise ValueError(f"{kind}'s model has buffers, which the batched step cannot keep")
        self.forward = GroupedLinearStack(skeleton)
        self.n = n
        self.name = name or kind
        self.options = dict(options or {})
        self.config = trainee.config
        self.device = trainee.device
        self.replicas = [trainee] + [trainee.replica() for _ in range(n - 1)]
        # the weights of model k are row k of one tensor: name -> (start, stop, shape)
        self.layout: dict[str, tuple[int, int, torch.Size]] = {}
        start = 0
        for key, p in skeleton.named_parameters():
            self.layout[key] = (start, start + p.numel(), p.shape)
            start += p.numel()
        self.weights = torch.zeros((n, start), device=self.device)
        decayed = torch.zeros(start, dtype=torch.bool, device=self.device)
        for a, b, shape in self.layout.values():
            decayed[a:b] = len(shape) >= 2  # the single trainee's decay group: >= 2-D weights
        self.optimizer = BatchedAdamW(
            self.weights,
            decayed,
            self.config.weight_decay,
            betas=self.config.betas,
            fused=self.config.optimizer == "adamw_fused",
            sizes=[b - a for a, b, _ in self.layout.values()],
        )
        self._pool = GradNormPool(len(self.layout))
        self.steps_done = np.zeros(n, dtype=np.int64)
        self._ready = np.zeros(n, dtype=bool)

    def params(self, weights: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of ``(m, n_weights)`` weight rows as ``(m, *shape)`` parameters."""
        m = weights.shape[0]
        return {k: weights[:, a:b].view(m, *s) for k, (a, b, s) in self.layout.items()}

    def reset(self, k: int, seed: int) -> None:
        """Model ``k`` starts afresh from ``seed``: weights, optimizer state, data order."""
        replica = self.replicas[k]
        replica.reset(seed)  # draws the weights and restarts the data order, as a single run
        with torch.no_grad():
            self.weights[k] = torch.cat([p.flatten() for p in replica.model.parameters()])
        replica.model = replica.optimizer = None  # the stacked weights hold the run now
        self.optimizer.reset(k)
        self.steps_done[k] = 0
        self._ready[k] = True

    def train_step(
        self, lrs: Sequence[float] | np.ndarray, active: Sequence[bool] | np.ndarray | None = None
    ) -> list[StepStats | None]:
        """One AdamW step of every active model ``k`` at learning rate ``lrs[k]``.

        Inactive models draw no batch and do not change. A model whose loss or gradient is
        not finite is reported with ``finite=False`` and skips its update.

        Returns:
            ``K`` entries: the step's stats for an active model, None for an inactive one.
        """
        lrs = np.asarray(lrs, dtype=np.float64).reshape(-1)
        active = np.ones(self.n, dtype=bool) if active is None else np.asarray(active, dtype=bool)
        if lrs.shape != (self.n,) or active.shape != (self.n,):
            raise ValueError(
                f"lrs and active must have shape ({self.n},); got {lrs.shape} and {active.shape}"
            )
        index = np.flatnonzero(active)
        bad = index[~(np.isfinite(lrs[index]) & (lrs[index] >= 0))]
        if bad.size:
            raise ValueError(f"lr={float(lrs[bad[0]])!r} is invalid; expected a finite value >= 0")
        if not self._ready[index].all():
            raise RuntimeError(f"call reset(k, seed) for models {index[~self._ready[index]]} first")
        out: list[StepStats | None] = [None] * self.n
        if index.size == 0:
            return out
        lead = self.replicas[0]
        x, y = lead.stack_batches([self.replicas[k] for k in index])
        # each parameter a leaf view of the weight rows: its gradient is its own tensor
        # (a gradient through slices of one leaf would add K x n zeros per parameter)
        params = {
            k: p.detach().requires_grad_(True) for k, p in self.params(self._rows(index)).items()
        }
        with lead._autocast():
            loss = lead.batched_loss(self.forward(params, x), y)
        loss.sum().backward()  # the models are independent: row k gets model k's gradient
        grads = [p.grad.flatten(1) for p in params.values()]
        norms = torch.stack([torch.linalg.vector_norm(g, dim=1) for g in grads], 1)
        # every model's loss and per-parameter norms cross to the host in one transfer
        summary = torch.cat([loss.detach().float()[:, None], norms.float()], 1).cpu().numpy()
        summary = summary.astype(np.float64)
        pooled = self._pool(summary[:, 1:])
        finite = np.isfinite(summary[:, 0]) & np.isfinite(pooled).all(axis=1)
        for j, k in enumerate(index):
            out[k] = StepStats(
                float(summary[j, 0]), float(pooled[j, 0]), pooled[j, 1:], bool(finite[j])
            )
        self.steps_done[index] += 1
        if finite.any():
            if not finite.all():
                keep = torch.as_tensor(np.flatnonzero(finite), device=self.device)
                grads, norms = [g[keep] for g in grads], norms[keep]
            if self.config.grad_clip > 0:  # per model, as clip_grad_norm_ does
                total = torch.linalg.vector_norm(norms, 2.0, dim=1)
                coef = torch.clamp(self.config.grad_clip / (total + 1e-6), max=1.0)[:, None]
                for g in grads:
                    g.mul_(coef)
            self.optimizer.step(grads, lrs, index[finite])
        return out

    @torch.no_grad()
    def evaluate(self, models: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Validation loss of each of ``models`` (default all) on the fixed subset."""
        index = np.arange(self.n) if models is None else np.asarray(models, dtype=np.int64)
        if not self._ready[index].all():
            raise RuntimeError(f"call reset(k, seed) for models {index[~self._ready[index]]} first")
        params = self.params(self._rows(index))
        lead, m = self.replicas[0], index.size
        total, count = np.zeros(m), 0
        with lead._autocast():
            for x, y in lead.eval_batches():
                xs, ys = x.expand(m, *x.shape), y.expand(m, *y.shape)
                loss = lead.batched_loss(self.forward(params, xs), ys)
                total += loss.float().cpu().numpy().astype(np.float64) * len(x)
                count += len(x)
        return total / count

    def _rows(self, index: np.ndarray) -> torch.Tensor:
        if index.size == self.n:
            return self.weights
        return self.weights[torch.as_tensor(index, device=self.device)]

    def slot(self, k: int) -> TraineeSlot:
        """Model ``k`` behind the single-trainee interface (``reset``, ``train_step``, ...)."""
        if not 0 <= k < self.n:
            raise IndexError(f"model {k} does not exist; valid: 0 to {self.n - 1}")
        return TraineeSlot(self, k)


class TraineeSlot:
    """Model ``k`` of a :class:`BatchedTrainee`, with the ``Trainee`` interface.

    Stepping one slot steps only its model; the batched vec env steps all slots at once
    through the batched trainee instead. ``name`` and ``options`` are the single
    trainee's, so an env over a slot has the same signature as one over the trainee.
    """

    def __init__(self, batched: BatchedTrainee, k: int) -> None:
        self.batched, self.k = batched, k
        self.name, self.options = batched.name, batched.options

    @property
    def steps_done(self) -> int:
        """Optimizer steps taken since ``reset``."""
        return int(self.batched.steps_done[self.k])

    @property
    def total_steps(self) -> int:
        """Optimizer-step budget of one run."""
        return self.batched.config.total_steps

    @property
    def base_lr(self) -> float:
        """The reference learning rate."""
        return self.batched.config.base_lr

    def reset(self, seed: int) -> None:
        """Fresh weights, optimizer state and data order of this model, from ``seed``."""
        self.batched.reset(self.k, seed)

    def train_step(self, lr: float) -> StepStats:
        """One optimizer step of this model alone."""
        lrs = np.zeros(self.batched.n)
        lrs[self.k] = lr
        stats = self.batched.train_step(lrs, np.arange(self.batched.n) == self.k)[self.k]
        assert stats is not None
        return stats

    def evaluate(self) -> float:
        """This model's validation loss."""
        return float(self.batched.evaluate([self.k])[0])


def make_batched_trainee(name: str, n: int, **options: Any) -> BatchedTrainee:
    """``make_batched_trainee("mlp", 8, dataset="mnist")``: K runs of trainee ``name``.

    Raises:
        ValueError: a trainee or an ``optimizer`` option without a batched form (naming
            those that have one), or an invalid option (as ``make_trainee``).
    """
    if name not in BATCHED_TRAINEES:
        raise ValueError(
            f"trainee {name!r} has no batched form; batched: {', '.join(BATCHED_TRAINEES)}"
        )
    return BatchedTrainee(make_trainee(name, **options), n, name=name, options=options)
