"""TorchTrainee: the PyTorch machinery every trainee shares (seeded init, optimizer, clipping, evaluation, the test split on demand)."""

from __future__ import annotations

import contextlib
import copy
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from trainees.base import StepStats, TraineeConfig, resolve_device
from trainees.gradnorm import GradNormPool, UpdateMoments, read_step
from trainees.optimizers import make_optimizer


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


class TorchTrainee(ABC):
    """Shared implementation of the Trainee contract for a PyTorch model.

    Subclasses build the model, draw minibatches and list the fixed validation batches
    and the test batches; this class owns seeding, the optimizer, the per-step LR,
    clipping, gradient-norm pooling, NaN handling, autocast, the switching between train
    and eval modes, evaluation and the final test metrics.
    """

    config: TraineeConfig
    uses_dropout: bool = False  # dropout draws from the global RNG: fork it per step
    # report StepStats.moments every this many steps (observation v1: the env sets its
    # steps_per_action before reset); 0: never
    track_updates: int = 0

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

        ``trainees.batched.trainee`` calls it on one replica for all; a subclass may gather the K
        batches in one operation.
        """
        xs, ys = zip(*(r.next_batch(r._gen) for r in replicas), strict=True)
        return torch.stack(xs), torch.stack(ys)

    def replica(self) -> TorchTrainee:
        """Another run of this trainee: the same config and (shared, read-only) data, with
        its own generators, model and optimizer; ``reset(seed)`` starts it.

        ``trainees.batched.trainee`` trains K replicas in lockstep; each draws its weights and
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
        every = self.track_updates
        self._moments = UpdateMoments(params, every=every) if every else None
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
            **dict(self.config.optimizer_options),
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
        loss_value, pooled, norms, moments = read_step(
            self._pool, self._moments, loss, self._params
        )
        finite = math.isfinite(loss_value) and bool(np.isfinite(pooled).all())
        if finite:
            if self.config.grad_clip > 0:  # bit for bit what clip_grad_norm_ does
                GradNormPool.clip_(self._params, norms, self.config.grad_clip)
            self.optimizer.step()
        self.steps_done += 1
        return StepStats(float(loss_value), float(pooled[0]), pooled[1:], finite, moments)

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
