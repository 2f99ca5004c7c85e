"""Behavioural cloning of expert schedules with imitation's ``bc.BC``, plus critic fitting.

The actor is cloned from the demonstrations; the critic (a separate transformer) is
then regressed on the demonstrations' discounted returns, so a later PPO stage starts
from neither a random actor nor a random critic.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from imitation.algorithms import bc
from imitation.data import rollout
from imitation.data.types import TrajectoryWithRew
from imitation.util import logger as imitation_logger
from stable_baselines3.common.policies import ActorCriticPolicy

from agents.policy import PolicyConfig, make_policy, save_policy


@dataclass(frozen=True)
class BCConfig:
    """Hyperparameters of behavioural cloning and critic fitting.

    Attributes:
        epochs: passes over the demonstrations for the actor.
        batch_size: transitions per BC gradient step.
        lr: Adam learning rate of BC and of the critic fit.
        ent_weight: imitation's entropy bonus weight.
        l2_weight: imitation's L2 penalty weight.
        critic_epochs: passes over the demonstrations for the critic.
        gamma: discount of the returns the critic is fitted to (PPO's gamma).
        train_log_std: also fit the Gaussian's log_std (off: it stays at its initial value).
        lr_final: BC's learning rate decays (cosine, per batch) to ``lr * lr_final``.
    """

    epochs: int = 200
    batch_size: int = 32
    lr: float = 1e-3
    ent_weight: float = 0.0  # precise imitation; PPO explores through its own log_std
    l2_weight: float = 0.0
    critic_epochs: int = 60
    gamma: float = 0.99
    # a log_std fitted by likelihood collapses (-1 -> -3.4 over a default run), which
    # sharpens the loss on the mean and leaves PPO a policy that barely explores
    train_log_std: bool = False
    lr_final: float = 0.05  # a decaying LR settles the fit instead of ending on noisy steps

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "critic_epochs"):
            if getattr(self, name) < 0 or (name == "batch_size" and self.batch_size < 1):
                raise ValueError(f"{name}={getattr(self, name)!r} is invalid; expected >= 1")
        if not 0 <= self.gamma <= 1:
            raise ValueError(f"gamma={self.gamma!r} is invalid; expected in [0, 1]")
        if not 0 < self.lr_final <= 1:
            raise ValueError(f"lr_final={self.lr_final!r} is invalid; expected in (0, 1]")


@dataclass(frozen=True)
class BCResult:
    """What :func:`train_actor` did.

    Attributes:
        validation_errors: action error on the validation demonstrations after each epoch
            (empty without validation demonstrations).
        best_epoch: the epoch whose weights were kept (1-based; the last without validation).
    """

    validation_errors: tuple[float, ...]
    best_epoch: int


def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """Reward-to-go ``G_t = r_t + gamma * G_{t+1}`` of one episode."""
    out = np.empty(len(rewards), dtype=np.float64)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * running
        out[t] = running
    return out


def train_actor(
    policy: ActorCriticPolicy,
    trajectories: Sequence[TrajectoryWithRew],
    config: BCConfig,
    *,
    rng: np.random.Generator,
    validation: Sequence[TrajectoryWithRew] = (),
    log_dir: str | None = None,
    progress_bar: bool = True,
) -> BCResult:
    """Clone the demonstrations into ``policy``'s actor with imitation's ``bc.BC``.

    Reproducible from ``rng``: imitation shuffles with the global torch RNG, so training
    runs under a forked RNG seeded from ``rng`` (the caller's global state is untouched).
    ``log_std`` is kept out of the fit unless ``config.train_log_std``; the learning rate
    decays by cosine to ``lr * lr_final``. With ``validation`` demonstrations (held-out
    seeds), the epoch with the lowest action error on them is kept. The batch size is at
    most the number of transitions (imitation requires it).
    """
    log_std = getattr(policy, "log_std", None)
    frozen = isinstance(log_std, torch.nn.Parameter) and not config.train_log_std
    if frozen:
        log_std.requires_grad_(False)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(rng.integers(2**62)))
            return _clone(policy, trajectories, config, rng, validation, log_dir, progress_bar)
    finally:
        if frozen:
            log_std.requires_grad_(True)


def _clone(
    policy: ActorCriticPolicy,
    trajectories: Sequence[TrajectoryWithRew],
    config: BCConfig,
    rng: np.random.Generator,
    validation: Sequence[TrajectoryWithRew],
    log_dir: str | None,
    progress_bar: bool,
) -> BCResult:
    """imitation's ``bc.BC`` with a decaying LR and held-out epoch selection."""
    transitions = rollout.flatten_trajectories(list(trajectories))
    custom_logger = imitation_logger.configure(log_dir, ["tensorboard", "csv"]) if log_dir else None
    batch_size = min(config.batch_size, len(transitions))
    trainer = bc.BC(
        observation_space=policy.observation_space,
        action_space=policy.action_space,
        rng=rng,
        policy=policy,
        demonstrations=transitions,
        batch_size=batch_size,
        optimizer_kwargs=dict(lr=config.lr),
        ent_weight=config.ent_weight,
        l2_weight=config.l2_weight,
        device=policy.device,
        custom_logger=custom_logger,
    )
    total = max(1, config.epochs * (len(transitions) // batch_size))
    decay = torch.optim.lr_scheduler.LambdaLR(
        trainer.optimizer,
        lambda b: (
            config.lr_final
            + (1 - config.lr_final) * 0.5 * (1 + math.cos(math.pi * min(b / total, 1.0)))
        ),
    )
    errors: list[float] = []
    best: dict[str, torch.Tensor] = {}

    def on_epoch_end() -> None:
        if validation:
            errors.append(action_error(policy, validation))
            if errors[-1] == min(errors):
                best.update({k: v.detach().clone() for k, v in policy.state_dict().items()})

    if config.epochs > 0:
        trainer.train(
            n_epochs=config.epochs,
            on_epoch_end=on_epoch_end,
            on_batch_end=decay.step,
            progress_bar=progress_bar,
            log_interval=100,
        )
    if best:
        policy.load_state_dict(best)
    best_epoch = int(np.argmin(errors)) + 1 if errors else config.epochs
    return BCResult(validation_errors=tuple(errors), best_epoch=best_epoch)


def critic_parameters(policy: ActorCriticPolicy) -> list[torch.nn.Parameter]:
    """The critic's own parameters: its features extractor and value layers."""
    prefixes = ("vf_features_extractor.", "mlp_extractor.value_net.", "value_net.")
    return [p for n, p in policy.named_parameters() if n.startswith(prefixes)]


def fit_critic(
    policy: ActorCriticPolicy,
    trajectories: Sequence[TrajectoryWithRew],
    config: BCConfig,
    *,
    rng: np.random.Generator,
) -> float:
    """Regress the critic on discounted returns of the demonstrations; returns the final MSE."""
    obs = np.concatenate([t.obs[:-1] for t in trajectories]).astype(np.float32)
    returns = np.concatenate([discounted_returns(t.rews, config.gamma) for t in trajectories])
    obs_t = torch.as_tensor(obs, device=policy.device)
    ret_t = torch.as_tensor(returns, dtype=torch.float32, device=policy.device)
    params = critic_parameters(policy)
    opt = torch.optim.Adam(params, lr=config.lr)
    policy.set_training_mode(True)
    for _ in range(config.critic_epochs):
        order = torch.from_numpy(rng.permutation(len(obs)))
        for i in range(0, len(obs), config.batch_size):
            idx = order[i : i + config.batch_size].to(policy.device)
            loss = torch.nn.functional.mse_loss(
                policy.predict_values(obs_t[idx]).squeeze(-1), ret_t[idx]
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
    policy.set_training_mode(False)
    with torch.no_grad():
        return float(torch.nn.functional.mse_loss(policy.predict_values(obs_t).squeeze(-1), ret_t))


def action_error(policy: ActorCriticPolicy, trajectories: Sequence[TrajectoryWithRew]) -> float:
    """Mean absolute error of the policy's deterministic actions on the demonstrations."""
    obs = np.concatenate([t.obs[:-1] for t in trajectories])
    acts = np.concatenate([t.acts for t in trajectories]).astype(np.float64)
    pred, _ = policy.predict(obs, deterministic=True)
    return float(np.mean(np.abs(pred.astype(np.float64).reshape(acts.shape) - acts)))


def clone_policy(
    env: gym.Env,
    trajectories: Sequence[TrajectoryWithRew],
    selection: Sequence[TrajectoryWithRew] | None,
    path: str | Path,
    *,
    policy_config: PolicyConfig,
    bc_config: BCConfig,
    seed: int = 0,
    log_dir: str | None = None,
    progress: bool = True,
) -> tuple[ActorCriticPolicy, dict[str, Any]]:
    """One BC policy from demonstrations, saved as a policy file for ``env``.

    A fresh actor-critic (seeded ``seed``) is cloned on ``trajectories`` (the epoch with
    the lowest action error on ``selection`` is kept), its critic is fitted to their
    discounted returns, and it is saved to ``path`` (``agents.policy.save_policy``).

    Returns:
        The policy, and a record of the fit: ``path``, ``demonstrations``,
        ``transitions``, ``train_seconds``, ``action_error_before`` / ``_after``,
        ``best_epoch``, ``selection_action_errors``, ``log_std``, ``critic_mse``.
    """
    rng = np.random.default_rng(seed)
    policy = make_policy(env.observation_space, env.action_space, policy_config, seed=seed)
    error_before = action_error(policy, trajectories)
    t0 = time.perf_counter()
    fit = train_actor(
        policy,
        trajectories,
        bc_config,
        rng=rng,
        validation=selection,
        log_dir=log_dir,
        progress_bar=progress,
    )
    critic_mse = fit_critic(policy, trajectories, bc_config, rng=rng)
    train_seconds = time.perf_counter() - t0
    saved = save_policy(policy, path, policy_config, env=env, gamma=bc_config.gamma)
    return policy, {
        "path": str(saved),
        "demonstrations": len(trajectories),
        "transitions": int(sum(len(t.acts) for t in trajectories)),
        "train_seconds": train_seconds,
        "action_error_before": error_before,
        "action_error_after": action_error(policy, trajectories),
        "best_epoch": fit.best_epoch,
        "selection_action_errors": list(fit.validation_errors),
        "log_std": float(policy.log_std.mean()) if hasattr(policy, "log_std") else None,
        "critic_mse": critic_mse,
    }
