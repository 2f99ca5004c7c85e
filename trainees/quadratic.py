"""A tiny synthetic trainee: noisy linear regression, for fast tests of code above trainees.

Targets are ``y = X w* + noise`` with Gaussian inputs. The problem (``w*``, the
validation set and the test set) is fixed by ``problem_seed``; ``reset(seed)`` only
changes the initial weights and the training minibatches.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from common.checks import check as _check
from trainees.base import TraineeConfig
from trainees.torch_trainee import TorchTrainee


@dataclass(frozen=True)
class QuadraticConfig(TraineeConfig):
    """Options of the linear-regression trainee.

    Attributes:
        dim: input dimension.
        noise: standard deviation of the target noise.
        problem_seed: fixes ``w*``, the validation set and the test set.
        val_samples: size of the fixed validation set, and of the test set.
    """

    total_steps: int = 200
    base_lr: float = 0.05
    batch_size: int = 16
    weight_decay: float = 0.0
    dim: int = 8
    noise: float = 0.1
    problem_seed: int = 0
    val_samples: int = 256

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.dim >= 1, "dim", self.dim, "an integer >= 1")
        _check(self.noise >= 0, "noise", self.noise, ">= 0")
        _check(self.val_samples >= 1, "val_samples", self.val_samples, "an integer >= 1")


# the test set's generator is seeded with problem_seed + this: a stream apart from the one
# that draws w* and the validation set, for every problem_seed below 2**32
TEST_SEED_OFFSET = 2**32


class QuadraticTrainee(TorchTrainee):
    """Mean-squared-error linear regression; the loss is a noisy quadratic of the weights.

    Its test set (for ``test_metrics()``) is ``val_samples`` further points of the same
    problem, drawn from a generator of their own seeded with
    ``problem_seed + TEST_SEED_OFFSET``, on the first call.
    """

    config: QuadraticConfig

    def __init__(self, config: QuadraticConfig | None = None) -> None:
        super().__init__(config or QuadraticConfig())
        g = torch.Generator().manual_seed(self.config.problem_seed)
        d = self.config.dim
        self._w_star = torch.randn(d, 1, generator=g)
        self._val = self._sample(self.config.val_samples, g)
        self._test: tuple[torch.Tensor, torch.Tensor] | None = None  # built by test_batches

    def _sample(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(n, self.config.dim, generator=gen)
        y = x @ self._w_star + self.config.noise * torch.randn(n, 1, generator=gen)
        return x.to(self.device), y.to(self.device)

    def build_model(self) -> nn.Module:
        return nn.Linear(self.config.dim, 1)

    def next_batch(self, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return self._sample(self.config.batch_size, gen)

    def eval_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        yield self._val

    def test_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The fixed test set, in one batch."""
        if self._test is None:
            g = torch.Generator().manual_seed(self.config.problem_seed + TEST_SEED_OFFSET)
            self._test = self._sample(self.config.val_samples, g)
        yield self._test

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(model(x).float(), y)

    def batched_loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``(K,)`` mean squared error of K models' ``(K, B, 1)`` predictions."""
        return F.mse_loss(outputs.float(), y, reduction="none").mean((1, 2))
