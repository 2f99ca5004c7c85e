"""The learning-rate-free optimizers a trainee can train with, from their authors' packages.

- ``DAdaptAdam`` (``dadaptation``): D-Adaptation Adam (Defazio & Mishchenko, ICML 2023),
  Adam at step size ``d · lr`` with ``d`` a growing estimate of the distance to the solution.
- ``Prodigy`` (``prodigyopt``): Prodigy (Mishchenko & Defazio, ICML 2024), the same idea with
  a faster-growing estimate.
- ``DoG`` and ``LDoG`` (``dog-optimizer``): Distance over Gradients and its layer-wise form
  (Ivgi, Hinder & Carmon, ICML 2023), SGD at step size ``lr · max distance moved /
  √(sum of squared gradient norms)``.
- ``MechanicAdamW`` (``mechanic-pytorch``): Mechanic (Cutkosky, Defazio & Mehta, NeurIPS
  2023) tuning a scale ``s`` of AdamW's updates: ``x = x_ref + s · Σ AdamW updates``.

Each is the authors' class changed only where a trainee needs it: it records the step size
it takes (``group["step_size"]``) where its package keeps none that outlives the step, and it
survives pickling, as an env holding a trainee must. A class is defined when first asked for
(a module ``__getattr__``, PEP 562), so its package is imported only then: a run with another
optimizer needs none of them, and pickle finds the classes here by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


class _RecordsDLR:
    """For D-Adaptation's and Prodigy's Adam: record ``d · lr`` before the step updates ``d``.

    That is the size this step's gradient is taken at (times the group's ``layer_scale``,
    and Adam's bias correction where it is on, as both packages compute it).
    """

    param_groups: list[dict[str, Any]]

    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        first = self.param_groups[0]
        lr = max(group["lr"] for group in self.param_groups)
        beta1, beta2 = first["betas"]
        k = first["k"]
        bias = (1 - beta2 ** (k + 1)) ** 0.5 / (1 - beta1 ** (k + 1))
        dlr = first["d"] * lr * (bias if first["use_bias_correction"] else 1.0)
        for group in self.param_groups:
            group["step_size"] = dlr * group.get("layer_scale", 1.0) if group["lr"] > 0 else 0.0
        return super().step(closure)  # type: ignore[misc]


class _PicklesFirstStep:
    """For DoG: keep its ``_first_step`` flag through pickling, which torch's optimizer
    ``__getstate__`` (defaults, state and groups only) would drop."""

    _first_step: bool

    def __getstate__(self) -> dict[str, Any]:
        return {**super().__getstate__(), "_first_step": self._first_step}  # type: ignore[misc]


def _dadapt_adam() -> type[torch.optim.Optimizer]:
    import dadaptation

    class DAdaptAdam(_RecordsDLR, dadaptation.DAdaptAdam):
        """``dadaptation.DAdaptAdam`` that records its step size; ``decouple`` defaults to
        True (AdamW-style decay) and is set without the notice its constructor prints."""

        def __init__(self, params: Any, *, decouple: bool = True, **kwargs: Any) -> None:
            super().__init__(params, decouple=False, **kwargs)
            self.defaults["decouple"] = decouple
            for group in self.param_groups:
                group["decouple"] = decouple

    return DAdaptAdam


def _prodigy() -> type[torch.optim.Optimizer]:
    import prodigyopt

    class Prodigy(_RecordsDLR, prodigyopt.Prodigy):
        """``prodigyopt.Prodigy`` that records its step size."""

    return Prodigy


def _dog() -> type[torch.optim.Optimizer]:
    import dog

    class DoG(_PicklesFirstStep, dog.DoG):
        """``dog.DoG``; its step size is its own ``group["eta"]``."""

    return DoG


def _ldog() -> type[torch.optim.Optimizer]:
    import dog

    class LDoG(_PicklesFirstStep, dog.LDoG):
        """``dog.LDoG``; its per-parameter step sizes are its own ``group["eta"]``."""

    return LDoG


def _mechanic_adamw() -> type[torch.optim.Optimizer]:
    import mechanic_pytorch

    # store_delta: keep Σ AdamW updates exactly, as the paper's algorithm does, instead of
    # recovering it as (x - x_ref) / (s + eps), off by eps / s while s is small
    base = mechanic_pytorch.mechanize(torch.optim.AdamW, store_delta=True)

    class MechanicAdamW(base):  # type: ignore[misc, valid-type]
        """Mechanic over ``torch.optim.AdamW`` (the package's defaults: λ = 0.01, six betas
        0.9 … 0.999999, s_init = 1e-8); records ``s · lr`` after each step."""

        def step(self, closure: Callable[[], float] | None = None) -> Any:
            result = super().step(closure)
            scale = float(self.state["_mechanic"]["s"].sum())
            for group in self.param_groups:
                group["step_size"] = scale * group["lr"]
            return result

    return MechanicAdamW


_CLASSES: dict[str, Callable[[], type[torch.optim.Optimizer]]] = {
    "DAdaptAdam": _dadapt_adam,
    "Prodigy": _prodigy,
    "DoG": _dog,
    "LDoG": _ldog,
    "MechanicAdamW": _mechanic_adamw,
}


def __getattr__(name: str) -> type[torch.optim.Optimizer]:
    """The class ``name``, defined (and its package imported) on first use."""
    if name not in _CLASSES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    cls = _CLASSES[name]()
    cls.__module__, cls.__qualname__ = __name__, name
    globals()[name] = cls
    return cls
