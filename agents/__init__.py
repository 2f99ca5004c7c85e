"""Agents: learning algorithms and the policies they produce — the policy network and its
files, BC, DAgger from a privileged expert, PPO fine-tuning, tabular Q-learning, the drop-in LearnedLRScheduler, and
the shipped policies with their Hub format.

Public names load their module on first use (stable-baselines3 and imitation are heavy)."""

from __future__ import annotations

from common.lazy import lazy_exports

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
    "scheduler": ("LearnedLRScheduler", "OutOfDomainWarning"),
    "hub": (
        "Domain", "PretrainedError", "from_pretrained", "push_to_hub", "read_pretrained",
        "save_pretrained",
    ),
    "pretrained": ("load_shipped", "resolve_policy", "shipped"),
}  # fmt: skip
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
