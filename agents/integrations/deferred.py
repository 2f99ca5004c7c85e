"""A LearnedLRScheduler whose ``step()`` waits for the next ``observe()``.

Trainers (Hugging Face ``Trainer``, Lightning) step a scheduler right after
``optimizer.step()`` and evaluate later, so a validation loss would reach the scheduler
after the LR of the next step was chosen. Deferring ``step()`` to the next ``observe()``
restores the plain loop's order: observe → optimizer step → report_val_loss → step.
"""

from __future__ import annotations

from typing import Any

import torch

from agents.scheduler import LearnedLRScheduler


class DeferredScheduler:
    """Wraps a :class:`LearnedLRScheduler`: :meth:`step` only marks that it is due.

    The due ``step()`` runs at the start of the next :meth:`observe` (before the LR is
    recorded), so an evaluation reported in between (:meth:`report_val_loss`) reaches
    the policy before it chooses the next LR, as in a plain loop. It has the surface a
    Hugging Face ``Trainer`` expects of a scheduler (``step``, ``get_last_lr``,
    ``state_dict``, ``load_state_dict``).

    Args:
        scheduler: the scheduler to drive.
    """

    def __init__(self, scheduler: LearnedLRScheduler) -> None:
        if not isinstance(scheduler, LearnedLRScheduler):
            raise TypeError(
                f"expected a LearnedLRScheduler, got {type(scheduler).__name__}: build one with "
                "agents.scheduler.LearnedLRScheduler(optimizer, policy, model=..., ...)"
            )
        self.scheduler = scheduler
        self.pending = False  # the trainer stepped; the scheduler's step() is still due
        self._observed = False  # observe() ran since the last step()

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The torch optimizer whose LRs are set."""
        return self.scheduler.optimizer

    def observe(self, loss: torch.Tensor | float, *, max_norm: float | None = None) -> None:
        """Run the due ``step()``, then :meth:`LearnedLRScheduler.observe` this step.

        Raises:
            RuntimeError: the previous optimizer step was not followed by :meth:`step`
                (the trainer skipped its scheduler, e.g. after an fp16 overflow).
        """
        if self._observed and not self.pending:
            raise RuntimeError(
                "observe() twice without step(): the trainer did not step the scheduler after "
                "the previous optimizer step (a skipped step, e.g. an fp16 overflow, is not "
                "supported)"
            )
        if self.pending:
            self.scheduler.step()
            self.pending = False
        self.scheduler.observe(loss, max_norm=max_norm)
        self._observed = True

    def report_val_loss(self, val_loss: float) -> None:
        """A validation loss evaluated after the latest optimizer step."""
        self.scheduler.report_val_loss(val_loss)

    def step(self) -> None:
        """After ``optimizer.step()``: the scheduler's ``step()`` runs at the next observe.

        Raises:
            RuntimeError: no :meth:`observe` since the last ``step()``.
        """
        if not self._observed or self.pending:
            raise RuntimeError(
                "step() without observe(): the scheduler must observe every optimizer step "
                "(loss and gradient norms) before it is stepped"
            )
        self.pending = True

    def get_last_lr(self) -> list[float]:
        """The LR of each param group in the latest optimizer step."""
        return self.scheduler.get_last_lr()

    def state_dict(self) -> dict[str, Any]:
        """The scheduler's state and whether its ``step()`` is due (plain values)."""
        return {
            "scheduler": self.scheduler.state_dict(),
            "pending": self.pending,
            "observed": self._observed,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a state written by :meth:`state_dict`."""
        self.scheduler.load_state_dict(state_dict["scheduler"])
        self.pending = bool(state_dict["pending"])
        self._observed = bool(state_dict["observed"])
