"""The Trainee contract and the PyTorch machinery shared by every trainee.

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

import contextlib
import copy
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from trainees.optimizers import OPTIMIZERS, OptimizerName, make_optimizer

N_GRAD_BUCKETS = 4  # every trainee reports this many pooled gradient norms, shallow to deep


@dataclass(frozen=True)
class StepStats:
    """What one optimizer step reports.

    Attributes:
        loss: the minibatch training loss before the update.
        grad_norm: global L2 norm of the gradient before clipping.
        grad_norms: ``(N_GRAD_BUCKETS,)`` L2 norms of the gradient in depth buckets.
        finite: False when the loss or any gradient is NaN/inf; the update was then skipped.
    """

    loss: float
    grad_norm: float
    grad_norms: np.ndarray
    finite: bool


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
            intended use). See ``trainees.optimizers``.
    """

    total_steps: int = 1000
    base_lr: float = 1e-3
    batch_size: int = 64
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0
    device: str | None = None
    optimizer: OptimizerName = "adamw"

    def __post_init__(self) -> None:
        _check(self.total_steps >= 1, "total_steps", self.total_steps, "an integer >= 1")
        _check(math.isfinite(self.base_lr) and self.base_lr > 0, "base_lr", self.base_lr, "> 0")
        _check(self.batch_size >= 1, "batch_size", self.batch_size, "an integer >= 1")
        _check(self.weight_decay >= 0, "weight_decay", self.weight_decay, ">= 0")
        _check(all(0 <= b < 1 for b in self.betas), "betas", self.betas, "each in [0, 1)")
        _check(self.grad_clip >= 0, "grad_clip", self.grad_clip, ">= 0 (0 disables)")
        _check(self.optimizer in OPTIMIZERS, "optimizer", self.optimizer, f"one of {OPTIMIZERS}")
        if self.device is not None:
            try:
                torch.device(self.device)
            except RuntimeError as e:
                raise ValueError(
                    f"device={self.device!r} is not a torch device; valid: 'cpu', 'cuda', "
                    "'cuda:N' or None (CUDA when available)"
                ) from e


def _check(ok: bool, name: str, value: object, valid: str) -> None:
    if not ok:
        raise ValueError(f"{name}={value!r} is invalid; expected {valid}")


def resolve_device(name: str | None) -> torch.device:
    """``name`` as a device, or CUDA when available and CPU otherwise."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def default_init_(model: nn.Module, gen: torch.Generator) -> None:
    """PyTorch's default initialisations, drawn from ``gen`` (torchvision's for convs).

    Raises:
        TypeError: for a module with parameters of a type it does not know, so that no
            weight is ever left uninitialised.
    """
    for m in model.modules():
        if isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.in_features)
            nn.init.uniform_(m.weight, -bound, bound, generator=gen)
            if m.bias is not None:
                nn.init.uniform_(m.bias, -bound, bound, generator=gen)
        elif isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=gen)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.LayerNorm):
            if m.weight is not None:
                nn.init.ones_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 1.0, generator=gen)
        elif any(True for _ in m.parameters(recurse=False)):
            raise TypeError(f"default_init_ does not know how to initialise {type(m).__name__}")


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


class TorchTrainee(ABC):
    """Shared implementation of the Trainee contract for a PyTorch model.

    Subclasses build the model, draw minibatches and list the fixed validation batches
    and the test batches; this class owns seeding, the optimizer, the per-step LR,
    clipping, gradient-norm pooling, NaN handling, autocast, the switching between train
    and eval modes, evaluation and the final test metrics.
    """

    config: TraineeConfig
    uses_dropout: bool = False  # dropout draws from the global RNG: fork it per step

    def __init__(self, config: TraineeConfig) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        self._gen = torch.Generator()  # CPU: init, data order and dropout seeds
        self.model: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.steps_done = 0
        self._evaluating = False  # the model (and an optimizer with modes) in eval mode
        self._optimizer_modes = False  # the optimizer has train()/eval() (Schedule-Free)
        self._train_weights: list[torch.Tensor] | None = None  # its y, kept while evaluating

    @property
    def total_steps(self) -> int:
        """Optimizer-step budget of one run."""
        return self.config.total_steps

    @property
    def base_lr(self) -> float:
        """The reference learning rate."""
        return self.config.base_lr

    # -- what subclasses provide -------------------------------------------------------
    @abstractmethod
    def build_model(self) -> nn.Module:
        """A fresh, uninitialised model (called under the meta device)."""

    def init_weights(self, model: nn.Module, gen: torch.Generator) -> None:
        """Initialise every parameter and buffer of ``model`` (on CPU) from ``gen``."""
        default_init_(model, gen)

    @abstractmethod
    def next_batch(self, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The next training minibatch ``(inputs, targets)`` on ``self.device``."""

    @abstractmethod
    def eval_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The fixed validation batches, always the same, on ``self.device``."""

    @abstractmethod
    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean loss of ``model`` on a batch."""

    def reset_data(self) -> None:  # noqa: B027 - optional hook
        """Restart the data order (called by ``reset`` after seeding)."""

    def test_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The whole test split (``test_split`` names it) in batches, on ``self.device``.

        Only ``test_metrics`` calls it; a subclass builds its test tensors on the first
        call, so none exist before the end of a run.
        """
        raise NotImplementedError(f"{type(self).__name__} has no test split")

    @property
    def test_split(self) -> str:
        """The split ``test_batches`` covers: ``"test"``, or ``"val"`` where there is none."""
        return "test"

    def test_sums(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Each test metric summed over one batch, as a float64 scalar (default: the loss).

        ``test_metrics`` reports key ``k`` as ``test_k``, its sum over the split divided by
        the number of predictions (``y.numel()`` per batch).
        """
        return {"loss": self.loss(model, x, y).double() * y.numel()}

    def stack_batches(self, replicas: Sequence[TorchTrainee]) -> tuple[torch.Tensor, torch.Tensor]:
        """The next minibatch of each replica (from its own generator), stacked ``(K, B, ...)``.

        ``trainees.batched`` calls it on one replica for all; a subclass may gather the K
        batches in one operation.
        """
        xs, ys = zip(*(r.next_batch(r._gen) for r in replicas), strict=True)
        return torch.stack(xs), torch.stack(ys)

    def replica(self) -> TorchTrainee:
        """Another run of this trainee: the same config and (shared, read-only) data, with
        its own generators, model and optimizer; ``reset(seed)`` starts it.

        ``trainees.batched`` trains K replicas in lockstep; each draws its weights and
        data order exactly as this trainee would from the same seed.
        """
        clone = copy.copy(self)
        for name, value in vars(self).items():  # every private RNG is the clone's own
            if isinstance(value, torch.Generator):
                setattr(clone, name, torch.Generator(device=value.device))
        clone.model = clone.optimizer = None
        clone.steps_done = 0
        clone.reset_data()
        return clone

    # -- the contract ------------------------------------------------------------------
    def reset(self, seed: int) -> None:
        """Fresh weights, optimizer state and data order, all from ``seed``."""
        self._gen.manual_seed(int(seed))
        with torch.device("meta"):
            model = self.build_model()
        model = model.to_empty(device="cpu")
        self.init_weights(model, self._gen)
        self.model = model.to(self.device)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self._params = params
        self._pool = GradNormPool(len(params))
        groups = [
            {
                "params": [p for p in params if p.dim() >= 2],
                "weight_decay": self.config.weight_decay,
            },
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        self.optimizer = make_optimizer(
            self.config.optimizer,
            [g for g in groups if g["params"]],
            self.config.base_lr,
            betas=self.config.betas,
        )
        modes = (getattr(self.optimizer, m, None) for m in ("train", "eval"))
        self._optimizer_modes = all(callable(m) for m in modes)
        if self._optimizer_modes:
            self.optimizer.train()  # type: ignore[attr-defined]
        self._evaluating, self._train_weights = False, None
        self.reset_data()
        self.steps_done = 0

    def train_step(self, lr: float) -> StepStats:
        """Exactly one optimizer step at learning rate ``lr`` (model in train mode).

        A non-finite loss or gradient is reported (``finite=False``) and the update is
        skipped, so the weights stay as they were; nothing is raised.
        """
        if self.model is None or self.optimizer is None:
            raise RuntimeError("call reset(seed) before train_step")
        if not (math.isfinite(lr) and lr >= 0):
            raise ValueError(f"lr={lr!r} is invalid; expected a finite value >= 0")
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self._evaluating or not self.model.training:  # only an evaluation switches them
            self._train_mode()
        x, y = self.next_batch(self._gen)
        self.optimizer.zero_grad(set_to_none=True)
        with self._forward_context():
            loss = self.loss(self.model, x, y)
        loss.backward()
        # the loss and every parameter's gradient norm cross to the host in one transfer,
        # the step's only sync
        loss_value, pooled, norms = self._pool.read(loss, self._params)
        finite = math.isfinite(loss_value) and bool(np.isfinite(pooled).all())
        if finite:
            if self.config.grad_clip > 0:  # bit for bit what clip_grad_norm_ does
                GradNormPool.clip_(self._params, norms, self.config.grad_clip)
            self.optimizer.step()
        self.steps_done += 1
        return StepStats(float(loss_value), float(pooled[0]), pooled[1:], finite)

    @torch.no_grad()
    def evaluate(self) -> float:
        """Mean loss over the fixed validation subset (model and optimizer in eval mode)."""
        if self.model is None:
            raise RuntimeError("call reset(seed) before evaluate")
        self._eval_mode()
        total, count = 0.0, 0
        with self._autocast():
            for x, y in self.eval_batches():
                total += float(self.loss(self.model, x, y)) * len(x)
                count += len(x)
        return total / count

    @torch.no_grad()
    def test_metrics(self) -> dict[str, float | int | str]:
        """Final metrics of the current weights on the whole test split.

        Computed on demand only, at the end of a run (the env never calls it), with the
        model and optimizer in eval mode as ``evaluate()``: Schedule-Free is scored at
        its averaged weights. It draws no random numbers, and training after it goes on
        exactly as without it.

        Returns:
            ``test_loss``: the mean loss per prediction (image, token or point);
            ``test_samples``: the number of predictions; ``test_split``: ``"test"``, or
            ``"val"`` for a dataset without a test split; and the trainee's own metrics
            (``test_accuracy`` for classifiers, ``test_bits_per_char`` for char LMs).
        """
        if self.model is None:
            raise RuntimeError("call reset(seed) before test_metrics")
        self._eval_mode()
        sums: dict[str, torch.Tensor] = {}
        count = 0
        with self._autocast():
            for x, y in self.test_batches():
                for key, value in self.test_sums(self.model, x, y).items():
                    sums[key] = sums[key] + value if key in sums else value
                count += y.numel()
        metrics: dict[str, float | int | str] = {
            f"test_{k}": float(v) / count for k, v in sums.items()
        }
        metrics |= {"test_samples": count, "test_split": self.test_split}
        return metrics

    # -- helpers -----------------------------------------------------------------------
    def _eval_mode(self) -> None:
        """Model and optimizer in eval mode: Schedule-Free puts its averaged ``x`` in."""
        self.model.eval()  # always: a caller's own loop may have switched the model back
        if self._evaluating:
            return
        self._evaluating = True
        if self._optimizer_modes:
            self._train_weights = [p.detach().clone() for p in self._params]
            self.optimizer.eval()  # type: ignore[union-attr]

    def _train_mode(self) -> None:
        """Model and optimizer in train mode, with the training weights exactly as they were."""
        self.model.train()
        if not self._evaluating:
            return
        self._evaluating = False
        if self._train_weights is not None:
            self.optimizer.train()  # type: ignore[union-attr]
            # y back bit for bit: the round trip y -> x -> y rounds, so an evaluation
            # would otherwise change the training trajectory
            with torch.no_grad():
                torch._foreach_copy_(self._params, self._train_weights)
            self._train_weights = None

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.device.type == "cuda":
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _forward_context(self) -> contextlib.AbstractContextManager:
        """Autocast, and with dropout a private RNG stream for the dropout masks."""
        if not self.uses_dropout:
            return self._autocast()
        stack = contextlib.ExitStack()
        stack.enter_context(self._dropout_rng())
        stack.enter_context(self._autocast())
        return stack

    @contextlib.contextmanager
    def _dropout_rng(self) -> Iterator[None]:
        """Seed dropout from the private generator without disturbing the global RNG."""
        seed = int(torch.randint(0, 2**62, (1,), generator=self._gen))
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield
