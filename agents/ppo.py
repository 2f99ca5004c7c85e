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

It also clips the actor's and the critic's gradients separately (SB3 clips them
together, so a critic with large returns throttles the actor), also switchable. Everything
else is SB3's PPO: rollouts, GAE, the clipped objective, ``target_kl`` early stopping,
logging. With every addition off (:meth:`FinetuneConfig.without_safeguards`, the
``--no-safeguards`` ablation) ``train()`` is SB3 2.2's, parameter for parameter (tested).

The env's episodes are seeded by whoever built it, never by SB3: SB3's constructor would
re-seed the vec env with ``seed + k`` (``set_random_seed``), putting training episodes on
seeds of other ranges; :class:`FinetunedPPO` seeds only the global RNGs and the action
space, and :func:`finetune` starts every training episode (first ones and automatic
resets) from its own seed of the run's block of ``agents.seeds.RL_TRAINING``.

:func:`finetune` is the whole job behind ``scripts/finetune_ppo.py``: batched vec env
(``envs.make_batched_vec_env``), atomic checkpoints and resume, held-out evaluation
keeping the best policy, TensorBoard, the policy files, metrics and plots.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import random
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.distributions import sum_independent_dims
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.utils import explained_variance, set_random_seed
from stable_baselines3.common.vec_env import VecEnv

from agents.bc import critic_parameters
from agents.evaluation import paired_difference
from agents.plots import Panel, save_panels, schedule_panels
from agents.policy import (
    PolicyFile,
    check_env,
    load_policy,
    make_policy,
    read_policy_file,
    save_policy,
)
from agents.seeds import rl_training_block, take
from envs.options import EnvOptions, signature_kwargs
from envs.rollout import Episode, run_episodes
from envs.vec_env import EpisodeSeeds, make_batched_vec_env
from experts.policy import SchedulePolicy
from experts.schedules import SCHEDULES, make_schedule
from trainees.files import atomic_write_bytes, write_json


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
        def check(ok: bool, name: str, valid: str) -> None:
            if not ok:
                raise ValueError(f"{name}={getattr(self, name)!r} is invalid; expected {valid}")

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
        if (
            env.observation_space != policy_file.observation_space
            or env.action_space != policy_file.action_space
        ):
            raise ValueError(
                f"the env's spaces {env.observation_space}, {env.action_space} are not the "
                f"policy's {policy_file.observation_space}, {policy_file.action_space}"
            )
        super().__init__(
            ActorCriticPolicy,
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
            policy_kwargs=policy_file.config.policy_kwargs(),
            seed=seed,
            **kwargs,
        )
        self.finetune_config = config
        self.policy_config = policy_file.config
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
        with torch.no_grad():
            ref = self.bc_policy.get_distribution(obs)
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
            {"rollout": self.rollouts_done + 1, "timesteps": self.num_timesteps,
             "critic_warmup": warmup, "kl_coef": kl_coef}
            | {k: float(np.mean(v)) if v else 0.0 for k, v in logs.items()}
        )  # fmt: skip


# -- checkpoints -------------------------------------------------------------------------
CHECKPOINT = "checkpoint.pt"


def _rng_state() -> dict[str, Any]:
    """The global RNG states SB3 draws from, as tensors and plain values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)],
        "python": [version, list(internal), gauss_next],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def save_checkpoint(model: FinetunedPPO, path: Path, extra: dict[str, Any]) -> Path:
    """Policy, optimizer, counters, RNG states and ``extra`` in one file, written atomically."""
    payload = {
        "policy": model.policy.state_dict(),
        "optimizer": model.policy.optimizer.state_dict(),
        "num_timesteps": model.num_timesteps,
        "rollouts_done": model.rollouts_done,
        "n_updates": model._n_updates,
        "rng": _rng_state(),
        "train_log": model.train_log,
        "extra": extra,
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(model: FinetunedPPO, path: Path) -> dict[str, Any]:
    """Restore a checkpoint written by :func:`save_checkpoint`; returns its ``extra``."""
    payload = torch.load(path, map_location=model.device, weights_only=True)
    model.policy.load_state_dict(payload["policy"])
    model.policy.optimizer.load_state_dict(payload["optimizer"])
    model.num_timesteps = int(payload["num_timesteps"])
    model.rollouts_done = int(payload["rollouts_done"])
    model._n_updates = int(payload["n_updates"])
    model.train_log = list(payload["train_log"])
    _set_rng_state(payload["rng"])
    return payload["extra"]


# -- evaluation --------------------------------------------------------------------------
def summarise(runs: list[Episode]) -> dict[str, Any]:
    """Mean return and best validation loss of evaluation episodes, with the per-seed values."""
    returns = [r.episode_return for r in runs]
    best = [r.best_val_loss for r in runs]
    return {
        "mean_return": float(np.mean(returns)),
        "mean_best_val_loss": float(np.mean(best)),
        "returns": returns,
        "best_val_losses": best,
        "diverged": int(sum(r.diverged for r in runs)),
    }


class _Lifecycle(BaseCallback):
    """Checkpoints and held-out evaluations between rollouts (after each ``train``)."""

    def __init__(self, job: _Job) -> None:
        super().__init__()
        self.job = job

    def _on_training_start(self) -> None:
        if not self.job.history:  # the start: BC (a log_std reset changes no deterministic action)
            self.job.evaluate(self.model)

    def _on_rollout_start(self) -> None:
        self.job.between_rollouts(self.model)

    def _on_step(self) -> bool:
        return True


def policy_digest(policy: ActorCriticPolicy) -> str:
    """SHA-1 of a policy's parameters and buffers (names, shapes and bytes, in order)."""
    h = hashlib.sha1()
    for name, t in policy.state_dict().items():
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


@dataclass
class _Job:
    """The state of one fine-tuning run that lives outside the model.

    ``ppo_best.pt`` and the checkpoint agree: the checkpoint holds the best policy's
    weights, and a resumed run rewrites ``ppo_best.pt`` from them, so the file never
    holds a policy from a stretch that was lost. Every history entry records the
    evaluated policy's digest (``policy_sha1``).
    """

    folder: Path
    eval_env: gym.Env
    eval_seeds: list[int]
    eval_every: int
    checkpoint_every: int
    gamma: float
    history: list[dict[str, Any]]
    episode_seeds: EpisodeSeeds | None = None
    best_return: float = -np.inf
    best_state: dict[str, torch.Tensor] | None = None
    handled: int = 0  # rollouts whose evaluation and checkpoint are done (or restored)

    @property
    def best_path(self) -> Path:
        return self.folder / "policies" / "ppo_best.pt"

    def evaluate(self, model: FinetunedPPO) -> None:
        runs = run_episodes(self.eval_env, model.policy, self.eval_seeds)
        entry = {"timesteps": model.num_timesteps, "rollouts": model.rollouts_done,
                 "policy_sha1": policy_digest(model.policy)} | summarise(runs)  # fmt: skip
        self.history.append(entry)
        for key in ("mean_return", "mean_best_val_loss"):
            model.logger.record(f"eval/{key}", entry[key])
        writer = _tb_writer(model)
        if writer is not None:  # the LR schedule of the first evaluation seed
            for step, lr in zip(runs[0].steps, runs[0].lrs, strict=True):
                writer.add_scalar(f"eval_lr/timesteps_{model.num_timesteps}", lr, int(step))
        model.logger.dump(model.num_timesteps)
        if entry["mean_return"] > self.best_return:
            self.best_return = entry["mean_return"]
            self.best_state = {
                k: v.detach().cpu().clone() for k, v in model.policy.state_dict().items()
            }
            save_policy(model.policy, self.best_path, model.policy_config, env=self.eval_env,
                        gamma=self.gamma)  # fmt: skip
        write_json(self.folder / "history.json", self.history)

    def between_rollouts(self, model: FinetunedPPO) -> None:
        r = model.rollouts_done
        if r <= self.handled:  # the start, or a resume's first rollout: already done
            return
        self.handled = r
        if r % self.eval_every == 0:
            self.evaluate(model)
        if r % self.checkpoint_every == 0:
            self.checkpoint(model)

    def checkpoint(self, model: FinetunedPPO) -> None:
        """The model, the episode seeds and this job's history and best policy, atomically."""
        seeds = self.episode_seeds
        save_checkpoint(model, self.folder / CHECKPOINT, {
            "history": self.history, "best_return": self.best_return,
            "best_state": self.best_state,
            "episode_seeds": seeds.state_dict() if seeds is not None else None,
        })  # fmt: skip

    def restore(self, model: FinetunedPPO, extra: dict[str, Any]) -> None:
        """Continue from a checkpoint's ``extra``: history, best policy, episode seeds."""
        self.history, self.best_return = list(extra["history"]), float(extra["best_return"])
        self.best_state = extra.get("best_state")
        self.handled = model.rollouts_done
        if self.episode_seeds is not None and extra.get("episode_seeds") is not None:
            self.episode_seeds.load_state_dict(extra["episode_seeds"])
        if self.best_state is not None:  # ppo_best.pt as of the checkpoint, not of a lost stretch
            best = make_policy(self.eval_env.observation_space, self.eval_env.action_space,
                               model.policy_config)  # fmt: skip
            best.load_state_dict(self.best_state)
            save_policy(best, self.best_path, model.policy_config, env=self.eval_env,
                        gamma=self.gamma)  # fmt: skip
        write_json(self.folder / "history.json", self.history)


def _tb_writer(model: PPO):
    for fmt in model.logger.output_formats:
        writer = getattr(fmt, "writer", None)
        if writer is not None:
            return writer
    return None


def expert_of(path: str | Path) -> str | None:
    """The expert a ``bc_<expert>.pt`` file imitates, if its name says so."""
    stem = Path(path).stem.removeprefix("bc_")
    return stem if stem in SCHEDULES else None


def finetune(
    init: str | Path,
    folder: str | Path,
    *,
    env_id: str | None = None,
    options: EnvOptions | None = None,
    total_timesteps: int = 20_000,
    n_envs: int = 8,
    seed: int = 0,
    config: FinetuneConfig | None = None,
    eval_every: int = 4,
    eval_episodes: int = 4,
    checkpoint_every: int = 4,
    report_episodes: int = 8,
    expert: str | None = None,
    resume: bool = False,
    progress: bool = True,
    device: str = "auto",
) -> dict[str, Any]:
    """Fine-tune the BC policy ``init`` with PPO; write policies, metrics and plots to ``folder``.

    Args:
        init: the BC policy file.
        folder: the run folder (``resume`` continues the run there).
        env_id: train on this id instead of the policy file's env (a deliberate transfer;
            with ``options`` on top of its defaults).
        options: env options (on top of the policy file's env, or of ``env_id``'s).
        total_timesteps: env steps of the whole run (all envs).
        n_envs: envs in lockstep (a batched vec env where the trainee has one).
        seed: the run's seed (0..89): SB3's global RNGs, and the block of
            ``agents.seeds.RL_TRAINING`` whose seeds start the training episodes
            (``agents.seeds.rl_training_block``): runs of different seeds never share an
            episode, and none trains on a demonstration, selection, held-out, tuning or
            final-evaluation seed.
        config: PPO hyperparameters and safeguards.
        eval_every: rollouts between held-out evaluations (model-selection seeds) that
            keep the best policy.
        eval_episodes: episodes per evaluation.
        checkpoint_every: rollouts between checkpoints.
        report_episodes: held-out seeds (``HELD_OUT``, disjoint from the selection seeds)
            of the final comparison of PPO, its BC start and the expert.
        expert: the expert of the comparison (default: from a ``bc_<expert>.pt`` name).
        resume: continue from ``folder``'s checkpoint up to ``total_timesteps`` (which
            may extend a finished run). The policy, optimizer, counters, RNG states,
            history and best policy are the checkpoint's; training goes on with fresh
            episodes (the next seeds of the block), not the ones running at the
            checkpoint, so it is not bit-identical to an uninterrupted run.
        progress: SB3's progress bar.
        device: ``auto``, ``cpu`` or ``cuda``.

    Returns:
        The metrics written to ``folder/metrics.json``.

    Raises:
        ValueError: an invalid ``seed`` or ``expert``, before any work starts.
        FileNotFoundError: ``resume`` without a checkpoint in ``folder``.
    """
    folder = Path(folder)
    config = config or FinetuneConfig()
    block = rl_training_block(seed)  # checked before any work, as the expert is
    saved = read_policy_file(init)
    expert = expert or expert_of(init)
    if expert is not None and expert not in SCHEDULES:
        raise ValueError(f"expert {expert!r} is invalid; valid: {', '.join(SCHEDULES)}")
    checkpoint = folder / CHECKPOINT
    if resume and not checkpoint.exists():
        raise FileNotFoundError(f"no {CHECKPOINT} in {folder} to resume from")
    if env_id is None:
        env_id, kwargs = signature_kwargs(saved.env, options)
    else:
        kwargs = (options or EnvOptions()).kwargs()
    eval_env = gym.make(env_id, **kwargs)
    for mismatch in check_env(saved.env, eval_env, allow_mismatch=True, source=str(init)):
        warnings.warn(f"fine-tuning {init} on another env: {mismatch}", stacklevel=2)
    vec = make_batched_vec_env(env_id, n_envs, episode_seeds=block, **kwargs)
    model = FinetunedPPO(vec, saved, config, seed=seed, device=device,
                         tensorboard_log=str(folder / "tb"))  # fmt: skip
    job = _Job(folder, eval_env, take("model_selection", eval_episodes), eval_every,
               checkpoint_every, saved.gamma, history=[],
               episode_seeds=vec.episode_seeds)  # fmt: skip
    t0 = time.perf_counter()
    if resume:  # fresh episodes: those running at the checkpoint are not continued
        job.restore(model, load_checkpoint(model, checkpoint))
        print(f"resumed {folder} at {model.num_timesteps} timesteps")
    remaining = total_timesteps - model.num_timesteps
    if remaining > 0:
        model.learn(remaining, callback=_Lifecycle(job), reset_num_timesteps=not resume,
                    tb_log_name="ppo", progress_bar=progress)  # fmt: skip
    if job.history[-1]["timesteps"] != model.num_timesteps:
        job.evaluate(model)
    seconds = time.perf_counter() - t0
    final_path = save_policy(model.policy, folder / "policies" / "ppo_final.pt", saved.config,
                             env=eval_env, gamma=saved.gamma)  # fmt: skip
    job.checkpoint(model)
    report = compare_to_start(init, folder, eval_env, report_episodes, expert)
    metrics = {
        "init": str(init),
        "env_id": env_id,
        "env_options": kwargs,
        "expert": expert,
        "seed": seed,
        "n_envs": n_envs,
        "total_timesteps": model.num_timesteps,
        "vec_env": type(vec.unwrapped).__name__,
        "training_seeds": vec.episode_seeds.state_dict(),
        "config": asdict(config),
        "seconds_this_session": seconds,
        "history": job.history,
        "train_log": model.train_log,
        "final_policy": str(final_path),
        "report": report,
    }
    write_json(folder / "metrics.json", metrics)
    plot_run(folder, metrics, report)
    return metrics


def compare_to_start(
    init: str | Path, folder: Path, env: gym.Env, n_seeds: int, expert: str | None
) -> dict[str, Any]:
    """PPO (final and best) against its BC start and the expert on held-out seeds.

    Per-seed differences are paired (same seed, same data order and initial weights);
    their mean comes with a 95% bootstrap CI.
    """
    seeds = take("held_out", n_seeds)
    policies: dict[str, Any] = {
        "ppo_final": folder / "policies" / "ppo_final.pt",
        "ppo_best": folder / "policies" / "ppo_best.pt",
        "bc": Path(init),
    }
    runs = {
        name: run_episodes(env, load_policy(path, env, allow_mismatch=True, device="cpu"), seeds)
        for name, path in policies.items()
    }
    if expert is not None:
        runs[f"expert_{expert}"] = run_episodes(
            env, SchedulePolicy(make_schedule(expert), env.action_space), seeds
        )
    out: dict[str, Any] = {"seeds": seeds, "runs": {k: summarise(v) for k, v in runs.items()}}
    out["lr_schedules"] = {k: {"steps": v[0].steps.tolist(), "lrs": v[0].lrs.tolist(),
                               "val_losses": v[0].val_losses.tolist()} for k, v in runs.items()}  # fmt: skip
    out["paired"] = {}
    for ppo in ("ppo_final", "ppo_best"):
        for other in [k for k in runs if not k.startswith("ppo")]:
            for key in ("returns", "best_val_losses"):
                a, b = np.array(out["runs"][ppo][key]), np.array(out["runs"][other][key])
                out["paired"][f"{ppo}_minus_{other}_{key}"] = paired_difference(a - b, seed=0)
        base = runs["bc"]
        out[f"{ppo}_lr_drift_from_bc"] = float(np.mean([
            np.mean(np.abs(np.log(p.lrs / q.lrs))) for p, q in zip(runs[ppo], base, strict=True)
        ]))  # fmt: skip
    return out


def plot_run(folder: Path, metrics: dict[str, Any], report: dict[str, Any]) -> None:
    """Return vs timesteps (BC start and expert as lines); LR and validation curves."""
    history = metrics["history"]
    ts = [h["timesteps"] for h in history]
    progress = Panel("held-out return", "timesteps", "mean return (selection seeds)")
    progress.series["PPO"] = (ts, [h["mean_return"] for h in history])
    progress.hlines["BC start"] = history[0]["mean_return"]
    runs = report["runs"]
    if metrics["expert"] is not None:
        progress.hlines[f"expert {metrics['expert']} (report seeds)"] = runs[
            f"expert_{metrics['expert']}"
        ]["mean_return"]
    best_val = Panel("held-out best val loss", "timesteps", "mean best validation loss")
    best_val.series["PPO"] = (ts, [h["mean_best_val_loss"] for h in history])
    kl = Panel("distance from BC", "timesteps", "per rollout")
    log = metrics["train_log"]
    kl.series["KL(pi_BC || pi)"] = ([t["timesteps"] for t in log], [t["kl_bc"] for t in log])
    kl.series["clip fraction"] = ([t["timesteps"] for t in log], [t["clip"] for t in log])
    save_panels(folder / "plots" / "progress", [progress, best_val, kl])
    curves = {
        (f"ref:{name}" if name.startswith("expert") else name): (
            s["steps"],
            s["lrs"],
            s["val_losses"],
        )
        for name, s in report["lr_schedules"].items()
    }
    save_panels(folder / "plots" / "schedules", schedule_panels(curves, report["seeds"][0]))
