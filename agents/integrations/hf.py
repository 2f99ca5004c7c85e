"""A learned LR schedule inside the Hugging Face ``Trainer``.

Supported: transformers >= 4.45, < 6 (tested with 5.24.0 and 4.57.6), with accelerate >= 1.0,
on one process. ``pip install 'lrschedule-gym[hf]'``.

No ``Trainer`` hook receives the loss, and the Trainer steps its scheduler before it
evaluates, so a callback alone cannot drive :class:`~agents.scheduler.LearnedLRScheduler`.
:class:`LearnedLRTrainer` observes the loss and the gradient norms in ``training_step``
after the last micro-batch's backward, clips inside the scheduler (the Trainer's own
clipping, ``max_grad_norm``, must be 0: it would clip before the norms are read), and
defers the scheduler's ``step()`` so that an evaluation lands before the next LR is
chosen::

    args = TrainingArguments("out", max_steps=2000, max_grad_norm=0, eval_strategy="steps",
                             eval_steps=64, learning_rate=3e-4)
    trainer = LearnedLRTrainer(model, args, train_dataset=train, eval_dataset=val,
                               policy="bc_cosine.pt", max_norm=1.0)
    trainer.train()
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import transformers
from packaging.version import Version
from transformers import Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_utils import TrainOutput

from agents.integrations.deferred import DeferredScheduler
from agents.scheduler import LearnedLRScheduler
from envs.rollout import Policy

SUPPORTED = ">=4.45,<6"
if not Version("4.45") <= Version(transformers.__version__) < Version("6"):
    raise ImportError(
        f"agents.integrations.hf supports transformers {SUPPORTED}; found "
        f"{transformers.__version__} (pip install 'lrschedule-gym[hf]')"
    )

# LearnedLRScheduler arguments the trainer fills in itself
_OWN_ARGUMENTS = ("optimizer", "model", "total_steps", "initial_val_loss")


class ReportValLossCallback(TrainerCallback):
    """Reports each evaluation's loss to the trainer's :class:`DeferredScheduler`.

    Evaluations before the first optimizer step, and those whose metrics lack ``metric``
    but hold another ``*_loss`` (another evaluation set, e.g. ``metric_key_prefix="test"``),
    are not reported.

    Args:
        metric: the metric key of the validation loss.
    """

    def __init__(self, metric: str = "eval_loss") -> None:
        self.metric = metric

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: Mapping[str, float] | None = None,
        lr_scheduler: Any = None,
        **kwargs: Any,
    ) -> None:
        """Hands ``metrics[metric]`` to the scheduler, after an optimizer step."""
        if not isinstance(lr_scheduler, DeferredScheduler) or state.global_step == 0:
            return
        metrics = metrics or {}
        if self.metric in metrics:
            lr_scheduler.report_val_loss(float(metrics[self.metric]))
        elif not any(key.endswith("_loss") for key in metrics):
            raise KeyError(
                f"the evaluation returned no {self.metric!r} (metrics: {sorted(metrics)}); the "
                "learned scheduler needs the validation loss: give the eval dataset labels, or "
                "pass val_metric= naming the loss metric"
            )


class LearnedLRTrainer(Trainer):
    """A ``Trainer`` whose learning rate a policy chooses (:class:`LearnedLRScheduler`).

    Per optimizer step, as in a plain loop: after the last micro-batch's backward, the
    scheduler observes the step's loss (the sum of the micro-batches' losses, which the
    Trainer scales by the accumulation) and the gradient norms, then clips to
    ``max_norm``; the optimizer steps; an evaluation's loss is reported
    (:class:`ReportValLossCallback`); then the scheduler sets the next LR.

    The scheduler is built in :meth:`create_scheduler` for ``max_steps`` optimizer steps
    on the Trainer's optimizer, or passed in as ``optimizers=(optimizer, scheduler)`` (a
    :class:`LearnedLRScheduler` built on that optimizer). Its state is saved in and
    restored from Trainer checkpoints.

    Args:
        *args: ``Trainer``'s positional arguments (``model``, ``args``, ...).
        policy: a shipped policy's name (``"tuningfree"``), a Hub-format folder, a policy
            file, a loaded policy or an expert ``SchedulePolicy``; needed
            unless ``optimizers`` holds a scheduler.
        initial_val_loss: validation loss of the model before training; by default
            ``train()`` evaluates it (``evaluate()[val_metric]``) unless it resumes.
        max_norm: clip the gradients' global norm to this (after reading them); None: no
            clipping. Replaces ``TrainingArguments.max_grad_norm``, which must be 0.
        val_metric: the evaluation metric reported to the scheduler.
        scheduler_kwargs: further :class:`LearnedLRScheduler` arguments (``device``,
            ``window``, ``steps_per_action``, ``eval_every``, ...).
        **kwargs: ``Trainer``'s keyword arguments.

    Raises:
        ValueError: ``max_grad_norm`` is not 0, no policy and no scheduler, or a
            ``scheduler_kwargs`` key the trainer sets itself.
        TypeError: ``optimizers`` holds a scheduler that is not a LearnedLRScheduler.
    """

    def __init__(
        self,
        *args: Any,
        policy: str | Path | Policy | None = None,
        initial_val_loss: float | None = None,
        max_norm: float | None = None,
        val_metric: str = "eval_loss",
        scheduler_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        clip = self.args.max_grad_norm
        if clip is not None and clip != 0:
            raise ValueError(
                f"TrainingArguments(max_grad_norm={clip!r}) clips before the learned scheduler "
                f"reads the gradient norms; set max_grad_norm=0 and pass "
                f"LearnedLRTrainer(max_norm={clip!r}) to clip after reading them"
            )
        if max_norm is not None and not max_norm > 0:
            raise ValueError(f"max_norm={max_norm!r} is invalid; expected a float > 0 or None")
        own = sorted(set(scheduler_kwargs or {}) & set(_OWN_ARGUMENTS))
        if own:
            raise ValueError(
                f"scheduler_kwargs {own} are set by the trainer; valid keys are "
                "LearnedLRScheduler's other arguments (device, window, steps_per_action, ...)"
            )
        if isinstance(self.lr_scheduler, LearnedLRScheduler):
            self.lr_scheduler = DeferredScheduler(self.lr_scheduler)
        elif self.lr_scheduler is not None and not isinstance(self.lr_scheduler, DeferredScheduler):
            raise TypeError(
                f"optimizers=(optimizer, {type(self.lr_scheduler).__name__}): LearnedLRTrainer "
                "needs a LearnedLRScheduler (or None, to build one from policy=)"
            )
        if self.lr_scheduler is None and policy is None:
            raise ValueError(
                "LearnedLRTrainer needs policy= (a shipped name, a policy file, a loaded policy or a "
                "SchedulePolicy) or optimizers=(optimizer, LearnedLRScheduler(...))"
            )
        self.policy = policy
        self.initial_val_loss = initial_val_loss
        self.max_norm = max_norm
        self.val_metric = val_metric
        self.scheduler_kwargs = dict(scheduler_kwargs or {})
        self._step_loss: torch.Tensor | None = None
        self._loss0: float | None = None  # the initial validation loss of this train()
        self._resuming = False
        self.add_callback(ReportValLossCallback(val_metric))

    def train(
        self, resume_from_checkpoint: str | bool | None = None, *args: Any, **kwargs: Any
    ) -> TrainOutput:
        """``Trainer.train``; first evaluates the initial validation loss if it is needed.

        Raises:
            ValueError: the initial validation loss is needed, but neither
                ``initial_val_loss`` nor an ``eval_dataset`` was given.
        """
        self._loss0, self._resuming = self.initial_val_loss, bool(resume_from_checkpoint)
        self._step_loss = None
        builds = self.lr_scheduler is None or getattr(self, "_created_lr_scheduler", False)
        # a resumed run restores the real value with the scheduler's state
        if builds and self._loss0 is None and not self._resuming:
            if self.eval_dataset is None:
                raise ValueError(
                    "the learned scheduler needs the initial validation loss: pass "
                    "initial_val_loss= or an eval_dataset for train() to evaluate it on"
                )
            metrics = self.evaluate()
            if self.val_metric not in metrics:
                raise KeyError(
                    f"evaluate() returned no {self.val_metric!r} (metrics: {sorted(metrics)}); "
                    "pass initial_val_loss= or val_metric= naming the validation loss"
                )
            self._loss0 = float(metrics[self.val_metric])
        return super().train(resume_from_checkpoint, *args, **kwargs)

    def create_scheduler(
        self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None
    ) -> DeferredScheduler:
        """A :class:`LearnedLRScheduler` for ``num_training_steps`` steps, deferred."""
        if self.lr_scheduler is None:
            if self.policy is None:
                raise ValueError("no policy to build the scheduler from: pass policy=")
            loss0 = self._loss0
            if loss0 is None:
                if not self._resuming:
                    raise ValueError(
                        "the initial validation loss is unknown: pass initial_val_loss= (or let "
                        "train() evaluate it)"
                    )
                loss0 = 1.0  # a placeholder: the checkpoint's scheduler state replaces it
            scheduler = LearnedLRScheduler(
                _torch_optimizer(optimizer if optimizer is not None else self.optimizer),
                self.policy,
                model=self.model,
                total_steps=num_training_steps,
                initial_val_loss=loss0,
                **self.scheduler_kwargs,
            )
            self.lr_scheduler = DeferredScheduler(scheduler)
            self._created_lr_scheduler = True  # another train() builds a fresh one
        return self.lr_scheduler

    def training_step(
        self, model: torch.nn.Module, inputs: Any, *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        """``Trainer.training_step``; after the last micro-batch, the scheduler observes."""
        loss = super().training_step(model, inputs, *args, **kwargs)
        self._step_loss = loss if self._step_loss is None else self._step_loss + loss
        if self.accelerator.sync_gradients:
            step_loss, self._step_loss = self._step_loss, None
            if not isinstance(self.lr_scheduler, DeferredScheduler):
                raise RuntimeError(
                    f"the trainer's lr_scheduler is a {type(self.lr_scheduler).__name__}; "
                    "LearnedLRTrainer builds its own in create_scheduler (do not replace it)"
                )
            self.lr_scheduler.observe(step_loss, max_norm=self.max_norm)
        return loss


def _torch_optimizer(optimizer: Any) -> torch.optim.Optimizer:
    """The torch optimizer inside accelerate's (or another) wrapper's ``.optimizer``.

    Raises:
        TypeError: no ``torch.optim.Optimizer`` is found.
    """
    inner = optimizer
    while getattr(inner, "optimizer", inner) is not inner:
        inner = inner.optimizer
    if not isinstance(inner, torch.optim.Optimizer):
        raise TypeError(
            f"the trainer's optimizer is a {type(optimizer).__name__} holding no "
            "torch.optim.Optimizer; the learned scheduler sets a torch optimizer's LRs"
        )
    return inner
