"""Experts: hand-designed LR schedules (pure functions of progress), the policies that act
them out in the env (plain and privileged), and their demonstrations for BC.

Public names load their module on first use (``demos`` imports imitation)."""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "schedules": (
        "SCHEDULES", "Constant", "Cosine", "LinearWarmupDecay", "Polynomial", "Schedule",
        "WarmupStableDecay", "make_schedule",
    ),
    "policy": ("SchedulePolicy",),
    "privileged": ("PrivilegedSchedulePolicy",),
    "demos": ("collect_or_load", "load_demonstrations", "save_demonstrations", "to_trajectory"),
}  # fmt: skip
_MODULE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE)


def __getattr__(name: str) -> Any:
    if name not in _MODULE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_MODULE[name]}"), name)
