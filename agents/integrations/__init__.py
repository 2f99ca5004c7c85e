"""Integrations: the learned LR scheduler inside the Hugging Face ``Trainer``
(``LearnedLRTrainer``) and inside Lightning (``LearnedLRCallback``).

Public names load their module on first use, so transformers and lightning (optional
extras ``hf`` and ``lightning``) are imported only by what needs them."""

from __future__ import annotations

from common.lazy import lazy_exports

_EXPORTS = {
    "deferred": ("DeferredScheduler",),
    "hf": ("LearnedLRTrainer", "ReportValLossCallback"),
    "lightning": ("LearnedLRCallback",),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
