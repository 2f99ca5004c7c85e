"""The PPO fine-tuning job: training from a BC policy file with held-out evaluations, checkpoints, resume, the final report and plots.

:func:`finetune` is the training itself; :func:`finetune_run` (behind
``scripts/finetune_ppo.py``) starts or resumes a run folder around it, with
:func:`check_finetune_args` and :func:`resumed_args` for its arguments.

(Above 400 lines on purpose: the run's state between rollouts, its checkpoints, resume
and report are one lifecycle around ``finetune``; split, each part would need the
others' internals.)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import warnings
from collections.abc import Mapping, Sequence, Set
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import ActorCriticPolicy

from agents.checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint
from agents.policy import (
    check_env,
    make_policy,
    read_policy_file,
    save_policy,
)
from agents.ppo import FinetuneConfig, FinetunedPPO
from agents.privileged import PRIVILEGED_FEATURES, VecPrivileged, deployable
from common.cli import ArgumentError
from common.files import run_dir, write_json
from common.plots import Panel, save_panels, schedule_panels
from common.seeds import rl_training_block, take
from envs.options import EnvOptions, check_env_ids
from envs.rollout import run_episodes
from envs.signature import signature_kwargs
from envs.vec_env import (
    EpisodeSeeds,
    MixedEpisodeSeeds,
    make_batched_vec_env,
    make_mixed_vec_env,
)
from evaluation.compare import compare_to_start, summarize_episodes
from evaluation.suite import check_training_env
from experts.schedules import SCHEDULES


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
    episode_seeds: EpisodeSeeds | MixedEpisodeSeeds | None = None
    best_return: float = -np.inf
    best_state: dict[str, torch.Tensor] | None = None
    handled: int = 0  # rollouts whose evaluation and checkpoint are done (or restored)

    @property
    def best_path(self) -> Path:
        return self.folder / "policies" / "ppo_best.pt"

    def evaluate(self, model: FinetunedPPO) -> None:
        policy = deployable(model.policy, model.policy_config)  # the actor on the env's own obs
        runs = run_episodes(self.eval_env, policy, self.eval_seeds)
        entry = {
            "timesteps": model.num_timesteps,
            "rollouts": model.rollouts_done,
            "policy_sha1": policy_digest(model.policy),
        } | summarize_episodes(runs)
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
            self.best_state = {k: v.detach().cpu().clone() for k, v in policy.state_dict().items()}
            save_policy(
                policy, self.best_path, model.policy_config, env=self.eval_env, gamma=self.gamma
            )
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
        save_checkpoint(
            model,
            self.folder / CHECKPOINT,
            {
                "history": self.history,
                "best_return": self.best_return,
                "best_state": self.best_state,
                "episode_seeds": seeds.state_dict() if seeds is not None else None,
            },
        )

    def restore(self, model: FinetunedPPO, extra: dict[str, Any]) -> None:
        """Continue from a checkpoint's ``extra``: history, best policy, episode seeds."""
        self.history, self.best_return = list(extra["history"]), float(extra["best_return"])
        self.best_state = extra.get("best_state")
        self.handled = model.rollouts_done
        if self.episode_seeds is not None and extra.get("episode_seeds") is not None:
            self.episode_seeds.load_state_dict(extra["episode_seeds"])
        if self.best_state is not None:  # ppo_best.pt as of the checkpoint, not of a lost stretch
            best = make_policy(
                self.eval_env.observation_space, self.eval_env.action_space, model.policy_config
            )
            best.load_state_dict(self.best_state)
            save_policy(
                best, self.best_path, model.policy_config, env=self.eval_env, gamma=self.gamma
            )
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
    reference_lr: float | None = None,
    mixture: Sequence[tuple[str, dict[str, Any], int, float]] = (),
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
            ``common.seeds.RL_TRAINING`` whose seeds start the training episodes
            (``common.seeds.rl_training_block``): runs of different seeds never share an
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
        reference_lr: a privileged critic (``agents.privileged``): the critic is told each
            training episode's ``log(reference_lr / base_lr)`` and trainee, the actor never
            is; for envs that draw their base LR (``base_lr_spread``). None: SB3's critic.
            Evaluations, saved policies and the report use the actor alone.
        mixture: further training tasks beside ``n_envs`` of the main env, as
            ``(env_id, gym.make options, n_envs, reference_lr)``: the training envs are a
            ``envs.vec_env.MixedVecEnv`` (each part batched where it can be), the
            privileged critic is told each env's own reference LR (``reference_lr`` is
            required), and the training seeds' block is shared out among the parts.
            Evaluations and the report stay on the main env.

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
    for e, o, where in [(env_id, kwargs, "the PPO env")] + [
        (e, o, f"PPO mixture task {e}") for e, o, _, _ in mixture or []
    ]:
        check_training_env(e, o, where)
    eval_env = gym.make(env_id, **kwargs)
    for mismatch in check_env(saved.env, eval_env, allow_mismatch=True, source=str(init)):
        warnings.warn(f"fine-tuning {init} on another env: {mismatch}", stacklevel=2)
    if mixture and reference_lr is None:
        raise ValueError("a mixture of tasks needs reference_lr (the privileged critic's)")
    if mixture:
        vec = make_mixed_vec_env(
            [(env_id, kwargs, n_envs)] + [(e, o, n) for e, o, n, _ in mixture], episode_seeds=block
        )
        refs = [reference_lr] * n_envs + [r for _, _, n, r in mixture for _ in range(n)]
        vec = VecPrivileged(vec, refs)
    else:
        vec = make_batched_vec_env(env_id, n_envs, episode_seeds=block, **kwargs)
        if reference_lr is not None:
            vec = VecPrivileged(vec, reference_lr)
    model = FinetunedPPO(
        vec, saved, config, seed=seed, device=device, tensorboard_log=str(folder / "tb")
    )
    job = _Job(
        folder,
        eval_env,
        take("model_selection", eval_episodes),
        eval_every,
        checkpoint_every,
        saved.gamma,
        history=[],
        episode_seeds=vec.episode_seeds,
    )
    t0 = time.perf_counter()
    if resume:  # fresh episodes: those running at the checkpoint are not continued
        job.restore(model, load_checkpoint(model, checkpoint))
        print(f"resumed {folder} at {model.num_timesteps} timesteps")
    remaining = total_timesteps - model.num_timesteps
    if remaining > 0:
        model.learn(
            remaining,
            callback=_Lifecycle(job),
            reset_num_timesteps=not resume,
            tb_log_name="ppo",
            progress_bar=progress,
        )
    if job.history[-1]["timesteps"] != model.num_timesteps:
        job.evaluate(model)
    seconds = time.perf_counter() - t0
    final_path = save_policy(
        deployable(model.policy, saved.config),
        folder / "policies" / "ppo_final.pt",
        saved.config,
        env=eval_env,
        gamma=saved.gamma,
    )
    job.checkpoint(model)
    report = compare_to_start(init, folder, eval_env, report_episodes, expert)
    metrics = {
        "init": str(init),
        "env_id": env_id,
        "env_options": kwargs,
        "expert": expert,
        "seed": seed,
        "n_envs": n_envs,
        "privileged_critic": {"reference_lr": reference_lr, "features": PRIVILEGED_FEATURES}
        if reference_lr is not None
        else None,
        "mixture": [
            {"env_id": e, "options": o, "n_envs": n, "reference_lr": r} for e, o, n, r in mixture
        ],
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


# --- the run folder around finetune() (scripts/finetune_ppo.py) ---------------------------

RESUME_FLAGS = ("--resume", "--total-timesteps", "--progress", "--device")


# the arguments that count something: each must be >= 1
COUNT_ARGS = ("total_timesteps", "n_envs", "eval_rollouts", "eval_episodes",
              "checkpoint_rollouts", "report_episodes")  # fmt: skip


def check_finetune_args(args: Mapping[str, Any]) -> None:
    """Raise ArgumentError for arguments a fine-tuning run refuses, naming the flag.

    ``args`` are ``finetune_ppo.py``'s, by field name: neither ``init`` nor ``resume``;
    an unknown ``expert`` or ``env``; one of the ``COUNT_ARGS`` below 1; a ``seed`` without
    its block of RL training seeds.
    """
    if args["init"] is None and args["resume"] is None:
        raise ArgumentError("give --init POLICY_FILE to start a run, or --resume RUN_DIR")
    expert, env = args["expert"], args["env"]
    if expert is not None and expert not in SCHEDULES:
        raise ArgumentError(f"--expert {expert!r} is invalid; valid: {', '.join(SCHEDULES)}")
    if env is not None:
        try:
            check_env_ids(env)
        except ValueError as e:
            raise ArgumentError(f"--env {env!r} is not a registered id: {e}") from None
    for name in COUNT_ARGS:
        if args[name] < 1:
            raise ArgumentError(
                f"--{name.replace('_', '-')} {args[name]} is invalid; expected >= 1"
            )
    try:
        rl_training_block(args["seed"])
    except ValueError as e:
        raise ArgumentError(f"--seed: {e}") from None


class _RunArgs(Protocol):
    """What :func:`resumed_args` reads of a ``finetune_ppo.py`` ``Args`` (a frozen dataclass)."""

    @property
    def resume(self) -> str | None: ...
    @property
    def total_timesteps(self) -> int: ...
    @property
    def progress(self) -> bool: ...
    @property
    def device(self) -> str: ...


A = TypeVar("A", bound=_RunArgs)


def resumed_args(args: A, flags: Set[str]) -> A:
    """The stored arguments of ``args.resume``'s run, with the flags a resume may change.

    ``args`` is ``finetune_ppo.py``'s ``Args``; the stored ones (``args.json``) are
    rebuilt as the same type. ``flags`` are those given on the command line.

    Raises:
        ArgumentError: a flag other than ``RESUME_FLAGS`` was given, naming it; or the
            folder holds no ``args.json``.
    """
    refused = sorted(set(flags) - set(RESUME_FLAGS))
    if refused:
        raise ArgumentError(
            f"--resume continues a run with its own arguments; cannot change {', '.join(refused)}"
            f" (allowed with --resume: {', '.join(RESUME_FLAGS[1:])})"
        )
    folder = Path(args.resume)
    if not (folder / "args.json").exists():
        raise ArgumentError(f"--resume {folder}: no args.json there (not a finetune_ppo run)")
    data = json.loads((folder / "args.json").read_text())
    data["options"] = EnvOptions(**data["options"])
    data["ppo"] = FinetuneConfig(**data["ppo"])
    stored = type(args)(**data)
    total = args.total_timesteps if "--total-timesteps" in flags else stored.total_timesteps
    return dataclasses.replace(
        stored,
        total_timesteps=total,
        progress=args.progress,
        device=args.device,
        resume=args.resume,
    )


def finetune_run(
    init: str | Path,
    *,
    resume: str | Path | None = None,
    out: str | Path = "runs",
    env_id: str | None = None,
    seed: int = 0,
    record: Mapping[str, Any] | None = None,
    **settings: Any,
) -> tuple[Path, dict[str, Any]]:
    """Start a fine-tuning run in a new folder under ``out``, or resume the one at ``resume``.

    Writes ``record`` as the folder's ``args.json`` (what a resume reads back), prints
    the folder, runs :func:`finetune` there, and prints the final comparison's paired
    differences.

    Args:
        init: the BC policy file.
        resume: a run folder to continue from its last checkpoint.
        out: root folder of run directories (a new run).
        env_id: train on this id instead of the policy file's env.
        seed: the run's seed.
        record: the command's arguments, stored as ``args.json``.
        **settings: the other keyword arguments of :func:`finetune`.

    Returns:
        The run folder, and the metrics written to its ``metrics.json``.
    """
    if resume:
        folder = Path(resume)
    else:
        env_name = env_id or read_policy_file(init).env["env_id"] or "env"
        folder = run_dir(out, env_name, "finetune_ppo", seed)
    write_json(folder / "args.json", dict(record or {}))
    print(f"run folder {folder}")
    metrics = finetune(init, folder, env_id=env_id, seed=seed, resume=bool(resume), **settings)
    for name, d in metrics["report"]["paired"].items():
        print(f"{name:50s} {d['mean']:+.4f}  95% CI [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]")
    return folder, metrics
