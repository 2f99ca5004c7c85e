"""Agents: learning algorithms and the policies they produce — the policy network and its
files, BC, DAgger from a privileged expert, PPO fine-tuning, tabular Q-learning and the drop-in LearnedLRScheduler.

Public names load their module on first use (stable-baselines3 and imitation are heavy)."""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "policy": (
        "PolicyConfig", "PolicyFile", "check_env", "load_policy", "make_policy",
        "read_policy_file", "save_policy",
    ),
    "transformer": ("WindowTransformer",),
    "bc": ("BCConfig", "BCResult", "action_error", "clone_policy", "fit_critic", "train_actor"),
    "dagger": ("DAggerConfig", "ExpertActor", "relabel", "run_dagger"),
    "ppo": ("FinetuneConfig", "FinetunedPPO"),
    "checkpoint": ("load_checkpoint", "save_checkpoint"),
    "qlearning": ("QLearningAgent", "QLearningConfig", "learn_episode"),
    "scheduler": ("LearnedLRScheduler",),
}  # fmt: skip
_MODULE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE)


def __getattr__(name: str) -> Any:
    if name not in _MODULE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_MODULE[name]}"), name)
