"""A learned LR schedule inside Lightning, as a callback.

Supported: lightning >= 2.2, < 3 (tested with 2.6.6), automatic optimization with one
optimizer, on one process. ``pip install 'lrschedule-gym[lightning]'``.

Lightning passes no loss to a callback: the module must log its training loss,
``self.log("train_loss", loss)`` in ``training_step``, and its validation loss,
``self.log("val_loss", loss)`` in ``validation_step``::

    loss0 = L.Trainer(logger=False).validate(module, val_loader, verbose=False)[0]["val_loss"]
    callback = LearnedLRCallback("bc_cosine.pt", initial_val_loss=loss0)
    trainer = L.Trainer(max_steps=2000, val_check_interval=64, callbacks=[callback])
    trainer.fit(module, train_loader, val_loader)

``configure_optimizers`` returns the optimizer alone (the callback sets its LRs).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from packaging.version import Version

from agents.integrations.deferred import DeferredScheduler
from agents.scheduler import LearnedLRScheduler
from envs.rollout import Policy

SUPPORTED = ">=2.2,<3"
if not Version("2.2") <= Version(lightning.__version__) < Version("3"):
    raise ImportError(
        f"agents.integrations.lightning supports lightning {SUPPORTED}; found "
        f"{lightning.__version__} (pip install 'lrschedule-gym[lightning]')"
    )


class LearnedLRCallback(Callback):
    """Sets the optimizer's LR each step with a :class:`LearnedLRScheduler`.

    In ``on_before_optimizer_step`` (after the last accumulated batch's backward, before
    Lightning clips and steps) the scheduler observes the step's loss and the gradient
    norms; a validation run's loss is reported in ``on_validation_end``; the scheduler's
    ``step()`` runs before the next observation (:class:`DeferredScheduler`), because
    Lightning validates after the optimizer step. The step's loss is the mean of the
    accumulated batches' ``trainer.callback_metrics[loss_key]``, which the module logs.

    Lightning's own clipping (``Trainer(gradient_clip_val=...)``) runs after the norms are
    read, so either it or ``max_norm`` may clip. ``val_check_interval`` counts batches:
    with gradient accumulation, make it a multiple of ``accumulate_grad_batches`` so that
    validation follows an optimizer step. The callback's state (the scheduler's) is saved
    in Lightning checkpoints; a checkpoint written after validation (``ModelCheckpoint``'s
    default) resumes with the same LRs.

    Args:
        policy: a shipped policy's name (``"tuningfree"``), a Hub-format folder, a policy
            file, a loaded policy or an expert ``SchedulePolicy``.
        initial_val_loss: validation loss of the model before training.
        total_steps: optimizer steps of the run; by default
            ``trainer.estimated_stepping_batches``.
        max_norm: clip the gradients' global norm to this after reading it; None: no
            clipping here.
        loss_key: the ``callback_metrics`` key of the training loss the module logs.
        val_key: the ``callback_metrics`` key of the validation loss the module logs.
        **scheduler_kwargs: further :class:`LearnedLRScheduler` arguments (``device``,
            ``window``, ``steps_per_action``, ``eval_every``, ...).
    """

    def __init__(
        self,
        policy: str | Path | Policy,
        *,
        initial_val_loss: float,
        total_steps: int | None = None,
        max_norm: float | None = None,
        loss_key: str = "train_loss",
        val_key: str = "val_loss",
        **scheduler_kwargs: Any,
    ) -> None:
        if max_norm is not None and not max_norm > 0:
            raise ValueError(f"max_norm={max_norm!r} is invalid; expected a float > 0 or None")
        if total_steps is not None and not (isinstance(total_steps, int) and total_steps >= 1):
            raise ValueError(f"total_steps={total_steps!r} is invalid; expected an integer >= 1")
        self.policy = policy
        self.initial_val_loss = float(initial_val_loss)
        self.total_steps = total_steps
        self.max_norm = max_norm
        self.loss_key, self.val_key = loss_key, val_key
        self.scheduler_kwargs = scheduler_kwargs
        self.scheduler: DeferredScheduler | None = None
        self._micro_losses: list[torch.Tensor] = []  # accumulated batches before the last
        self._stepped = False  # an optimizer step happened in this batch
        self._restored: dict[str, Any] | None = None

    # -- building --------------------------------------------------------------------------
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Builds the scheduler (after Lightning restored a checkpoint's optimizer)."""
        if not pl_module.automatic_optimization:
            raise ValueError("LearnedLRCallback supports automatic optimization only")
        if len(trainer.optimizers) != 1:
            raise ValueError(
                f"LearnedLRCallback drives one optimizer; configure_optimizers returned "
                f"{len(trainer.optimizers)}"
            )
        if trainer.lr_scheduler_configs:
            raise ValueError(
                "configure_optimizers returned an LR scheduler too; return the optimizer alone "
                "(the learned scheduler sets its LRs)"
            )
        if self.max_norm is not None and trainer.gradient_clip_val:
            raise ValueError(
                f"max_norm={self.max_norm} and Trainer(gradient_clip_val="
                f"{trainer.gradient_clip_val}) would clip twice; pass one of them"
            )
        scheduler = LearnedLRScheduler(
            trainer.optimizers[0],
            self.policy,
            model=pl_module,
            total_steps=self._total_steps(trainer),
            initial_val_loss=self.initial_val_loss,
            **self.scheduler_kwargs,
        )
        self.scheduler = DeferredScheduler(scheduler)
        if self._restored is not None:
            self.scheduler.load_state_dict(self._restored["scheduler"])
            self._micro_losses = [torch.tensor(x) for x in self._restored["micro_losses"]]
            self._restored = None

    def _total_steps(self, trainer: Trainer) -> int:
        if self.total_steps is not None:
            return self.total_steps
        steps = trainer.estimated_stepping_batches
        if not math.isfinite(steps):
            raise ValueError(
                "the run's length is unknown (trainer.estimated_stepping_batches is "
                f"{steps}); pass total_steps= or set max_steps / max_epochs"
            )
        return int(steps)

    # -- each step -------------------------------------------------------------------------
    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """A new batch: no optimizer step yet."""
        self._stepped = False

    def on_before_optimizer_step(
        self, trainer: Trainer, pl_module: LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        """The scheduler observes the step's loss and gradient norms, then may clip."""
        losses = [*self._micro_losses, self._metric(trainer, self.loss_key)]
        self._micro_losses = []
        # as a plain loop sums loss / n over the n accumulated batches
        loss = sum(value / len(losses) for value in losses)
        self._require_scheduler().observe(loss, max_norm=self.max_norm)
        self._stepped = True

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """After an optimizer step, the scheduler's step is due; else keeps the batch's loss."""
        if self._stepped:
            self._require_scheduler().step()  # runs at the next observation
        else:
            self._micro_losses.append(self._metric(trainer, self.loss_key))

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Reports the validation loss of a run after an optimizer step."""
        if trainer.sanity_checking or self.scheduler is None or trainer.global_step == 0:
            return
        self.scheduler.report_val_loss(float(self._metric(trainer, self.val_key)))

    def _metric(self, trainer: Trainer, key: str) -> torch.Tensor:
        value = trainer.callback_metrics.get(key)
        if value is None:
            raise KeyError(
                f"trainer.callback_metrics has no {key!r} (it has {sorted(trainer.callback_metrics)}"
                f"); the module must self.log({key!r}, loss), or pass the key it logs "
                "(loss_key= / val_key=)"
            )
        return value.detach().clone() if isinstance(value, torch.Tensor) else torch.tensor(value)

    def _require_scheduler(self) -> DeferredScheduler:
        if self.scheduler is None:
            raise RuntimeError(
                "the scheduler is built in on_train_start, before any optimizer step"
            )
        return self.scheduler

    # -- checkpoints -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The scheduler's state (plain values), saved in Lightning checkpoints."""
        if self.scheduler is None:
            return {} if self._restored is None else dict(self._restored)
        return {
            "scheduler": self.scheduler.state_dict(),
            "micro_losses": [float(x) for x in self._micro_losses],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a state written by :meth:`state_dict` (applied when training starts)."""
        if state_dict:
            self._restored = dict(state_dict)
