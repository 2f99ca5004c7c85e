"""A trained policy (or an expert schedule) as a drop-in PyTorch learning-rate scheduler.

``LearnedLRScheduler`` feeds the same training-signals component as ``LRScheduleEnv``
(``envs.signals.TrainingSignals``) and pools gradient norms with the same
``trainees.base.GradNormPool``, so a policy chooses, in a plain PyTorch loop, exactly
the learning rates it would choose in the env::

    scheduler = LearnedLRScheduler(optimizer, "bc_cosine.pt", model=model,
                                   total_steps=2000, initial_val_loss=evaluate())
    for step in range(2000):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        scheduler.observe(loss, max_norm=1.0)  # after backward: reads the norms, then clips
        optimizer.step()
        if (step + 1) % 64 == 0:
            scheduler.report_val_loss(evaluate())
        scheduler.step()                 # after optimizer.step(): the LR of the next step
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn
from torch.optim.lr_scheduler import LRScheduler

from agents.hub import Domain
from agents.pretrained import resolve_policy
from envs.actions import ContinuousLogMultiplier, DiscreteFactors
from envs.config import EnvConfig
from envs.observation import signature_observation
from envs.rollout import Policy
from envs.signals import TrainingSignals
from trainees.gradnorm import GradNormPool, UpdateMoments, read_step

_DEFAULTS = EnvConfig()
# settings a scheduler takes from a policy file's env (or from its keyword arguments)
SETTINGS = (
    "window", "steps_per_action", "eval_every", "action_type", "min_lr_mult", "max_lr_mult",
    "factors", "initial_lr_mult", "observation",
)  # fmt: skip


class OutOfDomainWarning(UserWarning):
    """A shipped or Hub-format policy is used outside the domain it was trained in."""


class LearnedLRScheduler(LRScheduler):
    """Sets the LR of every param group to ``initial_lr * multiplier`` chosen by a policy.

    Each action's multiplier is held for ``steps_per_action`` optimizer steps, as in the
    env; the observation is built from what the loop reports. In each iteration, in
    this order: ``loss.backward()``, :meth:`observe` (reads the gradient norms before
    clipping), clipping and ``optimizer.step()``, :meth:`report_val_loss` when you have
    evaluated, then :meth:`step`. A wrong order raises ``RuntimeError`` rather than
    computing a wrong feature.

    Args:
        optimizer: any optimizer; each param group keeps its own base LR.
        policy: a shipped policy's name (``"tuningfree"``, ``"tuningfree-v1"``: see
            :mod:`agents.pretrained`), a Hub-format folder (:func:`agents.hub.save_pretrained`),
            a policy file (from ``train_bc.py``...), a loaded policy, an expert
            ``SchedulePolicy``, or anything with SB3's ``predict``.
        model: the model whose gradients are observed (parameters in depth order).
        total_steps: optimizer steps of the whole run (the budget).
        initial_val_loss: validation loss of the model before training.
        device: where a policy file is loaded.
        **settings: ``window``, ``steps_per_action``, ``eval_every``, ``action_type``,
            ``min_lr_mult``, ``max_lr_mult``, ``factors``, ``initial_lr_mult``,
            ``observation`` (``"v0"``, ``"v1"``); by default those of the env a policy
            file records (the observation version from its features), else the env's
            defaults. With ``v1`` the scheduler computes the update-to-weight ratios and
            gradient-update cosines itself (``trainees.gradnorm.UpdateMoments``), keeping
            one copy of the weights.

    A shipped or Hub-format policy records the domain it was trained in
    (:class:`agents.hub.Domain`); outside it the scheduler warns, once per cause and in
    one line: another optimizer class, a budget far outside the trained range, a cadence
    (``steps_per_action``, ``eval_every``) other than the one it was trained with, another
    gradient clipping given to ``observe(max_norm=)``, or no validation loss reported by
    the time two evaluations were due.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        policy: str | Path | Policy,
        *,
        model: nn.Module,
        total_steps: int,
        initial_val_loss: float,
        device: str = "cpu",
        last_epoch: int = -1,
        **settings: Any,
    ) -> None:
        unknown = sorted(set(settings) - set(SETTINGS))
        if unknown:
            raise ValueError(f"unknown setting(s) {unknown}; valid: {', '.join(SETTINGS)}")
        self.policy = (
            resolve_policy(policy, device=device) if isinstance(policy, str | Path) else policy
        )
        cfg = _settings(self.policy, settings)
        self.steps_per_action = cfg["steps_per_action"]
        self.total_steps = int(total_steps)
        self.actions = _action_mapping(self.policy, cfg)
        self.signals = TrainingSignals(
            window=cfg["window"],
            total_steps=self.total_steps,
            eval_every=cfg["eval_every"],
            observation=cfg["observation"],
        )
        self._params = [p for p in model.parameters() if p.requires_grad]
        self._pool = GradNormPool(len(self._params))
        self._moments = (
            UpdateMoments(self._params, every=self.steps_per_action)
            if cfg["observation"] == "v1"
            else None
        )
        self.lr_mult = self.actions.initial_multiplier()
        self.signals.start(float(initial_val_loss), self.lr_mult)
        self._observed = self._stepped_optimizer = False
        # clipping (or any in-place change) after backward bumps every gradient's version
        # counter: watching the first parameter's is enough, and costs one hook per step
        self._grad_version: int | None = None
        if self._params:
            self._params[0].register_post_accumulate_grad_hook(self._on_grad)
        optimizer.register_step_post_hook(self._on_optimizer_step)
        self._started = False
        pretrained = getattr(self.policy, "lrgym_pretrained", None)
        self.domain: Domain | None = getattr(pretrained, "domain", None)
        self._warned: set[str] = set()
        self._val_reported = False
        self._check_setup(optimizer, cfg)
        super().__init__(optimizer, last_epoch)

    # -- what the training loop calls ------------------------------------------------------
    def observe(self, loss: torch.Tensor | float, *, max_norm: float | None = None) -> None:
        """Record this step's minibatch loss and the gradient norms, before clipping.

        Call it after ``loss.backward()`` and before ``optimizer.step()``. With
        ``max_norm`` it then clips the gradients (``clip_grad_norm_``), in the right order.

        Raises:
            RuntimeError: called twice in one iteration, after ``optimizer.step()``,
                without gradients, or after the gradients were modified (clipped) in place.
        """
        if self._observed:
            raise RuntimeError("observe() was already called in this iteration; call step() first")
        if self._stepped_optimizer:
            raise RuntimeError("observe() must come before optimizer.step() (it reads gradients)")
        if self.signals.steps_done >= self.total_steps:
            raise RuntimeError(f"the run's {self.total_steps} optimizer steps are done")
        if all(p.grad is None for p in self._params):
            raise RuntimeError("no gradients: call observe() after loss.backward()")
        watched = self._params[0].grad
        if watched is not None and watched._version != self._grad_version:
            raise RuntimeError(
                "the gradients were modified after backward() (clipped?): call observe() "
                "before clipping, or pass max_norm= to observe() to clip after reading them"
            )
        value = loss if isinstance(loss, torch.Tensor) else torch.tensor(float(loss))
        loss_value, pooled, norms, moments = read_step(
            self._pool, self._moments, value, self._params
        )
        self.signals.record_step(loss_value, pooled[1:], self.lr_mult, moments)
        self._observed = True
        if self.domain is not None and max_norm not in (None, self.domain.max_grad_norm):
            self._warn("clip", f"max_norm={max_norm} (trained with {self.domain.max_grad_norm})")
        if max_norm is not None:  # as clip_grad_norm_ does, reusing the norms just read
            GradNormPool.clip_(self._params, norms, max_norm)

    def report_val_loss(self, val_loss: float) -> None:
        """A validation loss evaluated after this iteration's optimizer step."""
        if not self._observed:
            raise RuntimeError("report_val_loss() belongs after observe() and before step()")
        self.signals.record_eval(float(val_loss))
        self._val_reported = True

    def step(self, epoch: None = None) -> None:  # type: ignore[override]
        """After ``optimizer.step()``: sets the LR of the next optimizer step."""
        if epoch is not None:
            raise ValueError("LearnedLRScheduler.step() takes no epoch")
        if not self._started:  # called once by LRScheduler.__init__: the first action
            self._started = True
            self._act()
        else:
            if not self._observed:
                raise RuntimeError(
                    "step() without observe(): call observe(loss) after loss.backward() in "
                    "every iteration"
                )
            self._observed = self._stepped_optimizer = False
            done = self.signals.steps_done
            if not self._val_reported and self.domain is not None:
                self._check_val_reported(done)
            if done < self.total_steps and done % self.steps_per_action == 0:
                self._act()
        self.last_epoch += 1
        self._step_count = getattr(self, "_step_count", 0) + 1
        self._apply()

    def get_lr(self) -> list[float]:
        """``initial_lr * multiplier`` for each param group."""
        return [base * self.lr_mult for base in self.base_lrs]

    # -- state -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: step counts, multiplier, the signals window and,
        for observation ``v1``, the weights at the last ``observe()`` (the update to come
        is measured from them)."""
        return {
            "last_epoch": self.last_epoch,
            "_step_count": self._step_count,
            "base_lrs": list(self.base_lrs),
            "lr_mult": self.lr_mult,
            "observed": self._observed,
            "val_reported": self._val_reported,
            "signals": self.signals.state_dict(),
            "update_snapshot": None if self._moments is None else self._moments.state_dict(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a state written by :meth:`state_dict`; the LRs are set again."""
        self.last_epoch = int(state_dict["last_epoch"])
        self._step_count = int(state_dict["_step_count"])
        self.base_lrs = list(state_dict["base_lrs"])
        self.lr_mult = float(state_dict["lr_mult"])
        self._observed = bool(state_dict["observed"])
        self._val_reported = bool(state_dict.get("val_reported", True))
        self.signals.load_state_dict(state_dict["signals"])
        if self._moments is not None:
            self._moments.load_state_dict(state_dict.get("update_snapshot"))
        self._apply()

    # -- internals -------------------------------------------------------------------------
    def _check_setup(self, optimizer: torch.optim.Optimizer, cfg: dict[str, Any]) -> None:
        """Warn where the optimizer, the budget or the cadence is outside the policy's
        domain (called from ``__init__``: the warning points at the caller's line)."""
        d = self.domain
        if d is None:
            return
        kind = type(optimizer).__name__
        if kind not in d.optimizers:
            what = f"optimizer {kind} (trained with {', '.join(d.optimizers)})"
            self._warn("optimizer", what, stacklevel=4)
        lo, hi = d.total_steps
        if not lo / d.budget_slack <= self.total_steps <= hi * d.budget_slack:
            what = f"total_steps={self.total_steps} (trained on {lo}..{hi})"
            self._warn("budget", what, stacklevel=4)
        trained = self.policy.lrgym_file.env
        for key in ("steps_per_action", "eval_every"):
            if cfg[key] != trained.get(key, cfg[key]):
                self._warn(key, f"{key}={cfg[key]} (trained with {trained[key]})", stacklevel=4)

    def _check_val_reported(self, done: int) -> None:
        """Warn once two evaluations were due and no validation loss was reported."""
        if done >= 2 * self.signals.eval_every:
            self._warn(
                "val",
                f"no validation loss reported in {done} steps (call report_val_loss every "
                f"{self.signals.eval_every})",
                stacklevel=4,
            )

    def _warn(self, cause: str, what: str, *, stacklevel: int = 3) -> None:
        """One line, once per cause and scheduler; ``stacklevel`` points at the user's call."""
        if cause in self._warned:
            return
        self._warned.add(cause)
        name = getattr(getattr(self.policy, "lrgym_pretrained", None), "name", "the policy")
        warnings.warn(
            f"{name} used outside its trained domain: {what}",
            OutOfDomainWarning,
            stacklevel=stacklevel,
        )

    def _act(self) -> None:
        self.signals.flush()
        action, _ = self.policy.predict(self.signals.observation(), deterministic=True)
        self.lr_mult = self.actions.multiplier(action, self.lr_mult)

    def _apply(self) -> None:
        self._last_lr = self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, self._last_lr, strict=True):
            group["lr"] = lr

    def _on_grad(self, p: torch.Tensor) -> None:
        self._grad_version = p.grad._version

    def _on_optimizer_step(self, *_: Any) -> None:
        self._stepped_optimizer = True


def _settings(policy: Any, given: dict[str, Any]) -> dict[str, Any]:
    """The scheduler's settings: explicit ones, else the policy file's env, else defaults."""
    stored = getattr(getattr(policy, "lrgym_file", None), "env", {}) or {}
    out = {}
    stored = {**stored, "observation": signature_observation(stored)}
    for key in SETTINGS:
        value = given.get(key, stored.get(key))
        out[key] = getattr(_DEFAULTS, key) if value is None else value
    if isinstance(out["factors"], list):
        out["factors"] = tuple(out["factors"])
    for key in ("window", "steps_per_action", "eval_every"):
        if not (isinstance(out[key], int) and out[key] >= 1):
            raise ValueError(f"{key}={out[key]!r} is invalid; expected an integer >= 1")
    return out


def _action_mapping(policy: Any, cfg: dict[str, Any]) -> ContinuousLogMultiplier | DiscreteFactors:
    """The env's action mapping for the policy's action space.

    Raises:
        ValueError: the policy's action space disagrees with the settings.
    """
    space = getattr(policy, "action_space", None)
    if isinstance(space, spaces.Discrete) or cfg["action_type"] == "discrete":
        mapping = DiscreteFactors(
            cfg["factors"], cfg["min_lr_mult"], cfg["max_lr_mult"], cfg["initial_lr_mult"]
        )
    else:
        mapping = ContinuousLogMultiplier(cfg["min_lr_mult"], cfg["max_lr_mult"])
    if space is not None and (
        type(space) is not type(mapping.space)
        or (isinstance(space, spaces.Box) and not np.allclose(space.low, mapping.space.low))
        or (isinstance(space, spaces.Discrete) and space.n != mapping.space.n)
    ):
        raise ValueError(
            f"the policy acts in {space}, but the settings give {mapping.space} "
            f"(action_type={cfg['action_type']!r}, min_lr_mult={cfg['min_lr_mult']}, "
            f"max_lr_mult={cfg['max_lr_mult']})"
        )
    return mapping
