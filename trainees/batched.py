"""K independent training runs of one trainee in lockstep, as one vectorised step.

Small trainees spend much of a step on fixed costs: the MLP's optimizer step is ~1.3 ms
on a 2-core CPU, a third of it outside kernels (Python, dispatch, the autograd engine);
batching removes most of that, and some of the kernels' own time (measured by
``envs.throughput.step_profile``; README, "Batched envs"). :class:`BatchedTrainee`
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

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from trainees.base import GradNormPool, StepStats, TorchTrainee
from trainees.factory import make_trainee

# Trainees with a batched form: their models are stacks of nn.Linear layers and
# elementwise activations. ResNet-18 has none (convolutions, and BatchNorm statistics),
# nor GPT-tiny (attention; on a CPU it is compute-bound, so batching would not gain).
BATCHED_TRAINEES: tuple[str, ...] = ("quadratic", "mlp")
# The optimizers with a batched form: BatchedAdamW, in the two forms of torch's AdamW.
BATCHED_OPTIMIZERS: tuple[str, ...] = ("adamw", "adamw_fused")

_ELEMENTWISE = (nn.ReLU, nn.GELU, nn.Tanh, nn.Sigmoid, nn.SiLU, nn.Identity)


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
                    p, [blocks[i][j] for i in params], m, v, [], steps,
                    lr=float(lrs[k]), beta1=beta1, beta2=beta2, weight_decay=decay,
                    eps=self.eps, amsgrad=False, maximize=False,
                )  # fmt: skip

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


# Whether a batched product rounds as the per-model product does, per operation, shapes,
# layouts and threads: BLAS libraries (MKL, cuBLAS) pick other kernels for some batched
# shapes (here, the MLP's small last layer), and one ulp per step grows over a run.
_BATCHED_IS_EXACT: dict[tuple, bool] = {}


def grouped_product(op: str, *args: torch.Tensor) -> torch.Tensor:
    """``op`` over K models' ``(K, ...)`` operands, rounded as the per-model product is.

    ``grouped_product("mm", a, b)`` is ``a @ b`` for ``(K, n, m)`` and ``(K, m, p)``.

    ``op`` is ``"mm"`` (``bmm``; per model ``torch.mm``) or ``"addmm"`` (``baddbmm``
    with a ``(K, n)`` bias; per model ``torch.addmm``, as ``F.linear`` computes). On a
    CPU the batched product is used where it is bit-identical to the per-model one (the
    first call with new shapes and layouts compares the two, once), else K per-model
    products. On a GPU the batched product is used as it is (K launches per product
    would cost more than batching gains): there, model ``k`` follows its single run up
    to float reassociation.
    """
    key = (op, torch.get_num_threads(), *((t.shape, t.stride(), t.dtype, t.device) for t in args))
    exact = True if args[0].device.type != "cpu" else _BATCHED_IS_EXACT.get(key)
    if exact is not False:
        if op == "mm":
            out = torch.bmm(*args)
        else:
            bias, x, w = args
            out = torch.baddbmm(bias[:, None], x, w)
        if exact:
            return out
    single = getattr(torch, op)
    want = torch.stack([single(*(t[k] for t in args)) for k in range(args[0].shape[0])])
    if exact is None:
        _BATCHED_IS_EXACT[key] = torch.allclose(out, want, rtol=0, atol=0, equal_nan=True)
    return want


class _GroupedLinear(torch.autograd.Function):
    """``x @ w^T + b`` for K models, with the backward pass ``F.linear``'s would take.

    Each model's output and gradients are computed with the products that ``addmm`` and
    its backward would use on that model (``x w^T + b`` forward, ``gy^T x`` for the
    weight, ``gy w`` for the input), batched where that rounds the same (see
    ``grouped_product``): no reassociation enters, and a model's gradients are
    bit-identical to its single run's.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        device = x.device.type
        if torch.is_autocast_enabled(device):  # the backward pass runs outside autocast:
            # keep the operands in the dtype autocast gives the forward products (as
            # autograd keeps them for F.linear), so the gradients come out as theirs do
            dtype = torch.get_autocast_dtype(device)
            x, w, b = (None if t is None else t.to(dtype) for t in (x, w, b))
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        w_t = w.transpose(1, 2)
        if b is None:
            return grouped_product("mm", x, w_t)
        return grouped_product("addmm", b, x, w_t)

    @staticmethod
    def backward(ctx: Any, gy: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, w = ctx.saved_tensors
        gx = grouped_product("mm", gy, w) if ctx.needs_input_grad[0] else None
        gw = grouped_product("mm", gy.transpose(1, 2), x)
        gb = gy.sum(1) if ctx.has_bias else None
        return gx, gw, gb


class GroupedLinearStack:
    """The forward pass of K models of one ``nn.Sequential`` of linear layers, together.

    Each ``nn.Linear`` becomes one batched matrix product over the K models' stacked
    weights; ``nn.Flatten`` and elementwise activations apply as they are.

    Raises:
        ValueError: a layer without a grouped form, naming it and those supported.
    """

    def __init__(self, model: nn.Module) -> None:
        layers = list(model) if isinstance(model, nn.Sequential) else [model]
        prefix = isinstance(model, nn.Sequential)
        self.layers: list[tuple[nn.Module, str]] = []
        for i, layer in enumerate(layers):
            ok = isinstance(layer, (nn.Linear, *_ELEMENTWISE)) or (
                isinstance(layer, nn.Flatten) and (layer.start_dim, layer.end_dim) == (1, -1)
            )
            if not ok:
                raise ValueError(
                    f"layer {i} ({type(layer).__name__}) has no grouped form; supported: "
                    "nn.Linear, nn.Flatten(), "
                    + ", ".join(f"nn.{c.__name__}" for c in _ELEMENTWISE)
                )
            self.layers.append((layer, f"{i}." if prefix else ""))

    def __call__(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """``(K, B, ...)`` outputs of the K models with ``params`` (``(K, *shape)`` each)."""
        for layer, prefix in self.layers:
            if isinstance(layer, nn.Linear):
                x = _GroupedLinear.apply(x, params[prefix + "weight"], params.get(prefix + "bias"))
            elif isinstance(layer, nn.Flatten):
                x = x.flatten(2)  # keep the model and batch dimensions
            else:
                x = layer(x)
        return x


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
