"""PPO fine-tuning of a BC policy, held near the demonstrations until it has learnt.

:class:`FinetunedPPO` extends stable-baselines3's ``PPO``: it starts from a policy file
written by BC (``agents.policy``) and adds three safeguards, each switchable:

- ``log_std`` is reset before RL (BC's likelihood fit can leave it collapsed, and a
  policy that barely explores has huge PPO ratios on its first update);
- a critic warm-up: the first rollouts train only the value function, the actor's
  parameters frozen (bit-identical afterwards), so the first policy updates use
  advantages from a critic fitted to this env's returns;
- a penalty ``kl_coef · KL(pi_BC || pi)`` toward the frozen BC policy in the PPO loss,
  its coefficient decaying linearly to ``kl_coef · kl_final`` over training, logged as
  ``train/kl_to_bc``: RL fine-tuning otherwise forgets the demonstrations in a few
  updates.

Given a ``agents.privileged.VecPrivileged`` env (the task's features as extra observation
columns), the policy is a ``PrivilegedActorCritic``: the critic sees the task, the actor
(loaded from the file, and the part that is saved and deployed) never does.

It also clips the actor's and the critic's gradients separately (SB3 clips them
together, so a critic with large returns throttles the actor), also switchable. Everything
else is SB3's PPO: rollouts, GAE, the clipped objective, ``target_kl`` early stopping,
logging. With every addition off (:meth:`FinetuneConfig.without_safeguards`, the
``--no-safeguards`` ablation) ``train()`` is SB3 2.2's, parameter for parameter (tested).

The env's episodes are seeded by whoever built it, never by SB3: SB3's constructor would
re-seed the vec env with ``seed + k`` (``set_random_seed``), putting training episodes on
seeds of other ranges; :class:`FinetunedPPO` seeds only the global RNGs and the action
space, and ``experiments.ppo_job.finetune`` starts every training episode (first ones and automatic
resets) from its own seed of the run's block of ``common.seeds.RL_TRAINING``.

:func:`experiments.ppo_job.finetune` is the whole job behind ``scripts/finetune_ppo.py``:
batched vec env, atomic checkpoints (``agents.checkpoint``) and resume, held-out
evaluation keeping the best policy, TensorBoard, the policy files, metrics and plots.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.distributions import sum_independent_dims
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.utils import explained_variance, set_random_seed
from stable_baselines3.common.vec_env import VecEnv

from agents.bc import critic_parameters
from agents.policy import PolicyConfig, PolicyFile, make_policy
from agents.privileged import (
    N_PRIVILEGED,
    PrivilegedActorCritic,
    augmented_space,
    load_plain_state,
    privileged_kwargs,
)
from common.checks import check as check_value


@dataclass(frozen=True)
class FinetuneConfig:
    """PPO hyperparameters and safeguards for fine-tuning a BC policy.

    The defaults are conservative: fine-tuning should move a good policy a little,
    not relearn it (see README, "PPO fine-tuning", for the measurements behind them).

    Attributes:
        learning_rate: Adam step size of PPO; small, so an update moves BC's precise fit
            by less than the imitation error (measured on MLP-MNIST: first-update clip
            fraction 0.03 at 3e-5, 0.13 at 1e-4, 0.27 at SB3's 3e-4).
        n_steps: env steps per env per rollout (one MLP episode is 63 steps).
        batch_size: minibatch size of the PPO epochs.
        n_epochs: passes over each rollout.
        clip_range: PPO's ratio clip; 0.1 (not 0.2) keeps each update near the data's policy.
        target_kl: stop a rollout's epochs once the approximate KL to the rollout policy
            exceeds 1.5 x this.
        gae_lambda: GAE's lambda.
        vf_coef: weight of the value loss (the critic has its own network and clip).
        max_grad_norm: gradient-norm clip (of the actor and the critic separately, or of
            all parameters together as SB3 does: ``separate_clip``).
        separate_clip: clip the actor's and the critic's gradients separately.
        log_std: reset the Gaussian's log std to this before RL (None: keep BC's).
        critic_warmup_rollouts: first rollouts that train only the value function.
        kl_coef: weight of KL(pi_BC || pi) in the loss (0: no penalty).
        kl_final: the weight decays linearly to ``kl_coef * kl_final`` at the end.
    """

    learning_rate: float = 3e-5
    n_steps: int = 64
    batch_size: int = 64
    n_epochs: int = 4
    clip_range: float = 0.1
    target_kl: float | None = 0.02
    gae_lambda: float = 0.95
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    separate_clip: bool = True
    log_std: float | None = -1.0
    critic_warmup_rollouts: int = 2
    kl_coef: float = 1.0
    kl_final: float = 0.1

    def __post_init__(self) -> None:
        def check(ok: bool, name: str, valid: str) -> None:  # common.checks, value read here
            check_value(ok, name, getattr(self, name), valid)

        check(self.learning_rate > 0, "learning_rate", "> 0")
        check(self.n_steps >= 1, "n_steps", "an integer >= 1")
        check(self.batch_size >= 2, "batch_size", "an integer >= 2")
        check(self.n_epochs >= 1, "n_epochs", "an integer >= 1")
        check(0 < self.clip_range < 1, "clip_range", "in (0, 1)")
        check(self.target_kl is None or self.target_kl > 0, "target_kl", "> 0 or None")
        check(self.critic_warmup_rollouts >= 0, "critic_warmup_rollouts", ">= 0")
        check(self.kl_coef >= 0, "kl_coef", ">= 0")
        check(0 <= self.kl_final <= 1, "kl_final", "in [0, 1]")

    def without_safeguards(self) -> FinetuneConfig:
        """Plain SB3 PPO with these hyperparameters: every addition off.

        No log_std reset, no critic warm-up, no KL penalty, one gradient clip over all
        parameters (SB3's): ``FinetunedPPO.train()`` is then SB3 2.2's ``PPO.train()``.
        """
        return dataclasses.replace(
            self, log_std=None, critic_warmup_rollouts=0, kl_coef=0.0, separate_clip=False
        )


class FinetunedPPO(PPO):
    """SB3 PPO started from a BC policy file, with the safeguards of :class:`FinetuneConfig`.

    Args:
        env: the vec env to train on (its spaces must be the policy's).
        policy_file: the BC policy (``agents.policy.read_policy_file``); its discount is used.
        config: hyperparameters and safeguards.
        seed: SB3's seed (SB3 seeds the global RNGs with it: it samples actions and
            shuffles minibatches from them). Unlike SB3, the env is not re-seeded: its
            episodes' seeds are the caller's (see :func:`finetune`).
        **kwargs: passed to ``PPO`` (``tensorboard_log``, ``device``, ``verbose``).
    """

    def __init__(
        self,
        env: VecEnv,
        policy_file: PolicyFile,
        config: FinetuneConfig | None = None,
        *,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        config = config or FinetuneConfig()
        # a VecPrivileged env (the task's features as extra columns): the critic sees them
        self.privileged = env.observation_space == augmented_space(policy_file.observation_space)
        if (
            not self.privileged and env.observation_space != policy_file.observation_space
        ) or env.action_space != policy_file.action_space:
            raise ValueError(
                f"the env's spaces {env.observation_space}, {env.action_space} are not the "
                f"policy's {policy_file.observation_space}, {policy_file.action_space} "
                "(nor those with the privileged task columns of agents.privileged)"
            )
        policy_kwargs = (privileged_kwargs if self.privileged else PolicyConfig.policy_kwargs)(
            policy_file.config
        )
        super().__init__(
            PrivilegedActorCritic if self.privileged else ActorCriticPolicy,
            env,
            learning_rate=config.learning_rate,
            n_steps=config.n_steps,
            batch_size=config.batch_size,
            n_epochs=config.n_epochs,
            gamma=policy_file.gamma,
            gae_lambda=config.gae_lambda,
            clip_range=config.clip_range,
            ent_coef=0.0,
            vf_coef=config.vf_coef,
            max_grad_norm=config.max_grad_norm,
            target_kl=config.target_kl,
            policy_kwargs=policy_kwargs,
            seed=seed,
            **kwargs,
        )
        self.finetune_config = config
        self.policy_config = policy_file.config
        if self.privileged:  # the actor and the critic's window part; the task term starts at 0
            load_plain_state(self.policy, policy_file.state_dict)
        else:
            self.policy.load_state_dict(policy_file.state_dict)
        self.bc_policy = make_policy(
            policy_file.observation_space, policy_file.action_space, policy_file.config
        )
        self.bc_policy.load_state_dict(policy_file.state_dict)
        self.bc_policy.to(self.device).set_training_mode(False)
        self.bc_policy.requires_grad_(False)
        if config.log_std is not None and isinstance(
            getattr(self.policy, "log_std", None), torch.Tensor
        ):
            with torch.no_grad():
                self.policy.log_std.fill_(config.log_std)
        critic = {id(p) for p in critic_parameters(self.policy)}
        self.critic_params = [p for p in self.policy.parameters() if id(p) in critic]
        self.actor_params = [p for p in self.policy.parameters() if id(p) not in critic]
        self.rollouts_done = 0
        self.train_log: list[dict[str, Any]] = []  # per rollout: losses, KL to BC, clip fraction

    def set_random_seed(self, seed: int | None = None) -> None:
        """SB3's seeding of the global RNGs and the action space, leaving the env alone.

        SB3 also calls ``env.seed(seed)``, which starts env ``k`` at ``seed + k``: the
        training episodes would then be whatever seeds ``seed`` happens to name.
        """
        if seed is None:
            return
        set_random_seed(seed, using_cuda=self.device.type == torch.device("cuda").type)
        self.action_space.seed(seed)

    def kl_coef(self) -> float:
        """The KL penalty's weight now (decays linearly over training)."""
        c = self.finetune_config
        remaining = self._current_progress_remaining
        return c.kl_coef * (c.kl_final + (1.0 - c.kl_final) * remaining)

    def _evaluate(self, obs: torch.Tensor, actions: torch.Tensor):
        """``evaluate_actions``, also returning the action distribution (for the KL)."""
        pi_features, vf_features = self.policy.extract_features(obs)
        latent_pi = self.policy.mlp_extractor.forward_actor(pi_features)
        latent_vf = self.policy.mlp_extractor.forward_critic(vf_features)
        dist = self.policy._get_action_dist_from_latent(latent_pi)
        return self.policy.value_net(latent_vf).flatten(), dist.log_prob(actions), dist

    def kl_to_bc(self, obs: torch.Tensor, dist=None) -> torch.Tensor:
        """Mean KL(pi_BC(.|s) || pi(.|s)) over the observations ``obs``."""
        if dist is None:
            dist = self.policy.get_distribution(obs)
        with torch.no_grad():  # the BC policy reads the env's own columns only
            ref = self.bc_policy.get_distribution(
                obs[..., :-N_PRIVILEGED] if self.privileged else obs
            )
        kl = torch.distributions.kl_divergence(ref.distribution, dist.distribution)
        return (sum_independent_dims(kl) if kl.dim() > 1 else kl).mean()

    def train(self) -> None:
        """SB3 2.2's ``PPO.train`` with the critic warm-up, the KL penalty and separate clips."""
        warmup = self.rollouts_done < self.finetune_config.critic_warmup_rollouts
        for p in self.actor_params:  # frozen actor: no gradient, so Adam leaves it as it is
            p.requires_grad_(not warmup)
        try:
            self._train(warmup)
        finally:
            for p in self.actor_params:
                p.requires_grad_(True)
        self.rollouts_done += 1

    def _train(self, warmup: bool) -> None:
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        clip_range = self.clip_range(self._current_progress_remaining)
        kl_coef = self.kl_coef()
        logs: dict[str, list[float]] = {k: [] for k in ("pg", "vf", "clip", "kl_bc", "approx_kl")}
        continue_training = True
        for _ in range(self.n_epochs):
            approx_kls = []
            for data in self.rollout_buffer.get(self.batch_size):
                actions = data.actions
                if isinstance(self.action_space, spaces.Discrete):
                    actions = actions.long().flatten()
                values, log_prob, dist = self._evaluate(data.observations, actions)
                advantages = data.advantages
                if self.normalize_advantage and len(advantages) > 1:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
                ratio = torch.exp(log_prob - data.old_log_prob)
                policy_loss = -torch.min(
                    advantages * ratio,
                    advantages * torch.clamp(ratio, 1 - clip_range, 1 + clip_range),
                ).mean()
                value_loss = F.mse_loss(data.returns, values)
                kl_bc = self.kl_to_bc(data.observations, dist)
                logs["pg"].append(policy_loss.item())
                logs["vf"].append(value_loss.item())
                logs["kl_bc"].append(kl_bc.item())
                logs["clip"].append(torch.mean((torch.abs(ratio - 1) > clip_range).float()).item())
                if warmup:  # the critic alone learns; the actor's loss is not even formed
                    loss = self.vf_coef * value_loss
                else:
                    loss = policy_loss + self.vf_coef * value_loss
                    if kl_coef > 0:  # off: SB3's loss exactly (ent_coef is 0)
                        loss = loss + kl_coef * kl_bc
                with torch.no_grad():
                    log_ratio = log_prob - data.old_log_prob
                    approx_kl = torch.mean((torch.exp(log_ratio) - 1) - log_ratio).item()
                approx_kls.append(approx_kl)
                if self.target_kl is not None and approx_kl > 1.5 * self.target_kl:
                    continue_training = False
                    break
                self.policy.optimizer.zero_grad()
                loss.backward()
                if self.finetune_config.separate_clip:
                    for group in (self.actor_params, self.critic_params):
                        torch.nn.utils.clip_grad_norm_(group, self.max_grad_norm)
                else:  # SB3's one clip over all parameters
                    torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.policy.optimizer.step()
            logs["approx_kl"] += approx_kls
            self._n_updates += 1
            if not continue_training:
                break
        buffer = self.rollout_buffer
        self.logger.record("train/policy_gradient_loss", float(np.mean(logs["pg"])))
        self.logger.record("train/value_loss", float(np.mean(logs["vf"])))
        self.logger.record("train/approx_kl", float(np.mean(logs["approx_kl"] or [0.0])))
        self.logger.record("train/clip_fraction", float(np.mean(logs["clip"])))
        self.logger.record("train/kl_to_bc", float(np.mean(logs["kl_bc"])))
        self.logger.record("train/kl_coef", kl_coef)
        self.logger.record("train/critic_warmup", int(warmup))
        self.logger.record("train/loss", loss.item())
        self.logger.record(
            "train/explained_variance",
            explained_variance(buffer.values.flatten(), buffer.returns.flatten()),
        )
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", torch.exp(self.policy.log_std).mean().item())
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)
        self.train_log.append(
            {
                "rollout": self.rollouts_done + 1,
                "timesteps": self.num_timesteps,
                "critic_warmup": warmup,
                "kl_coef": kl_coef,
            }
            | {k: float(np.mean(v)) if v else 0.0 for k, v in logs.items()}
        )
