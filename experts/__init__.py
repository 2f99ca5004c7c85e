"""Experts: hand-designed LR schedules (pure functions of progress), the policies that act
them out in the env (plain and privileged), and their demonstrations for BC.

Public names load their module on first use (``demos`` imports imitation)."""

from __future__ import annotations

from common.lazy import lazy_exports

_EXPORTS = {
    "schedules": (
        "SCHEDULES", "Constant", "Cosine", "LinearWarmupDecay", "Polynomial", "Schedule",
        "WarmupStableDecay", "make_schedule",
    ),
    "policy": ("SchedulePolicy",),
    "privileged": ("PrivilegedSchedulePolicy",),
    "demos": ("collect_or_load", "load_demonstrations", "save_demonstrations", "to_trajectory"),
}  # fmt: skip
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
