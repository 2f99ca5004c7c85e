"""PPO fine-tuning from a BC policy file (``agents.ppo``): the learned scheduler's second stage.

Trains on the env the policy file records (or ``--env``), K envs in lockstep (a batched
vec env for the MLP and the synthetic trainee), with the safeguards of
``agents.ppo.FinetuneConfig``; evaluates on held-out seeds every few rollouts, keeping
the best policy; checkpoints atomically; compares PPO with its BC start and the expert
on other held-out seeds at the end::

    python scripts/finetune_ppo.py --init runs/.../policies/bc_cosine.pt
    python scripts/finetune_ppo.py --init bc_cosine.pt --total-timesteps 5000 --n-envs 4
    python scripts/finetune_ppo.py --init bc_cosine.pt --no-safeguards      # the ablation
    python scripts/finetune_ppo.py --resume runs/LRSchedule-MLP-v0__finetune_ppo__0__17...
    python scripts/finetune_ppo.py --resume RUN_DIR --total-timesteps 12288   # extend a run

``--resume`` continues with the run's own arguments; only ``--total-timesteps`` (which may
extend a finished run), ``--progress`` and ``--device`` may be given with it, and any
other flag is refused by name. Training goes on with fresh episodes (see
``agents.ppo.finetune``).

Writes ``policies/ppo_final.pt``, ``policies/ppo_best.pt`` (``load_policy`` reads them),
``metrics.json``, ``history.json``, ``plots/`` (PNG + CSV) and TensorBoard logs (``tb/``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Set
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import tyro

from agents.policy import read_policy_file
from agents.ppo import FinetuneConfig
from common.cli import ArgumentError, fail, given_flags, parse
from common.files import run_dir, write_json
from common.seeds import rl_training_block
from envs.options import EnvOptions, check_env_ids
from experiments.ppo_job import finetune
from experts.schedules import SCHEDULES

RESUME_FLAGS = ("--resume", "--total-timesteps", "--progress", "--device")


@dataclass(frozen=True)
class Args:
    """Fine-tune a BC policy with PPO.

    Attributes:
        init: the BC policy file (``train_bc.py`` writes ``policies/bc_<expert>.pt``).
        env: train on this id instead of the policy file's env (a deliberate transfer).
        options: env options on top of the policy file's env (None keeps it).
        total_timesteps: env steps of the whole run, all envs together.
        n_envs: envs in lockstep.
        ppo: PPO hyperparameters and safeguards.
        safeguards: the log_std reset, the critic warm-up, the KL penalty and the separate
            clips (--no-safeguards drops all four: plain SB3 PPO, the ablation).
        eval_rollouts: rollouts between held-out evaluations (the best policy is kept).
        eval_episodes: episodes per evaluation (model-selection seeds 500, ...).
        checkpoint_rollouts: rollouts between checkpoints.
        report_episodes: held-out seeds (1000, ...) of the final comparison with BC and the expert.
        expert: the expert of that comparison (default: from the ``bc_<expert>.pt`` name).
        seed: the run's seed (0..89; it also picks the run's own block of RL training seeds).
        resume: a run folder to continue from its last checkpoint, with its own arguments
            (only --total-timesteps, --progress and --device may be given with it).
        out: root folder of run directories.
        progress: SB3's progress bar.
        device: auto | cpu | cuda.
    """

    init: str | None = None
    env: str | None = None
    options: Annotated[EnvOptions, tyro.conf.OmitArgPrefixes] = field(default_factory=EnvOptions)
    total_timesteps: int = 20_000
    n_envs: int = 8
    ppo: FinetuneConfig = field(default_factory=FinetuneConfig)
    safeguards: bool = True
    eval_rollouts: int = 4
    eval_episodes: int = 4
    checkpoint_rollouts: int = 4
    report_episodes: int = 8
    expert: str | None = None
    seed: int = 0
    resume: str | None = None
    out: str = "runs"
    progress: bool = True
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def __post_init__(self) -> None:
        if self.init is None and self.resume is None:
            raise ArgumentError("give --init POLICY_FILE to start a run, or --resume RUN_DIR")
        if self.expert is not None and self.expert not in SCHEDULES:
            raise ArgumentError(
                f"--expert {self.expert!r} is invalid; valid: {', '.join(SCHEDULES)}"
            )
        if self.env is not None:
            try:
                check_env_ids(self.env)
            except ValueError as e:
                raise ArgumentError(f"--env {self.env!r} is not a registered id: {e}") from None
        for name in ("total_timesteps", "n_envs", "eval_rollouts", "eval_episodes",
                     "checkpoint_rollouts", "report_episodes"):  # fmt: skip
            if getattr(self, name) < 1:
                flag = "--" + name.replace("_", "-")
                raise ArgumentError(f"{flag} {getattr(self, name)} is invalid; expected >= 1")
        try:
            rl_training_block(self.seed)
        except ValueError as e:
            raise ArgumentError(f"--seed: {e}") from None


def stored_args(folder: Path) -> Args:
    """The arguments a run folder was started with."""
    data = json.loads((folder / "args.json").read_text())
    data["options"] = EnvOptions(**data["options"])
    data["ppo"] = FinetuneConfig(**data["ppo"])
    return Args(**data)


def resumed_args(args: Args, flags: Set[str]) -> Args:
    """The stored arguments of ``args.resume``'s run, with the flags a resume may change.

    Raises:
        ArgumentError: a flag other than ``RESUME_FLAGS`` was given, naming it.
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
    stored = stored_args(folder)
    total = args.total_timesteps if "--total-timesteps" in flags else stored.total_timesteps
    return dataclasses.replace(stored, total_timesteps=total, progress=args.progress,
                               device=args.device, resume=args.resume)  # fmt: skip


def main(args: Args, flags: Set[str] = frozenset()) -> dict:
    """Start (or resume) a fine-tuning run; returns its metrics.

    ``flags`` are the flags given on the command line (``--resume`` refuses most).
    """
    if args.resume:
        try:
            args = resumed_args(args, flags)
        except ArgumentError as e:
            fail(str(e))
        folder = Path(args.resume)
        write_json(folder / "args.json", asdict(dataclasses.replace(args, resume=None)))
    else:
        env_name = args.env or read_policy_file(args.init).env["env_id"] or "env"
        folder = run_dir(args.out, env_name, "finetune_ppo", args.seed)
        write_json(folder / "args.json", asdict(args))
    print(f"run folder {folder}")
    config = args.ppo if args.safeguards else args.ppo.without_safeguards()
    metrics = finetune(
        args.init, folder, env_id=args.env, options=args.options,
        total_timesteps=args.total_timesteps, n_envs=args.n_envs, seed=args.seed,
        config=config, eval_every=args.eval_rollouts, eval_episodes=args.eval_episodes,
        checkpoint_every=args.checkpoint_rollouts, report_episodes=args.report_episodes,
        expert=args.expert, resume=bool(args.resume), progress=args.progress, device=args.device,
    )  # fmt: skip
    for name, d in metrics["report"]["paired"].items():
        print(f"{name:50s} {d['mean']:+.4f}  95% CI [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]")
    print(f"wrote {folder / 'metrics.json'}")
    return metrics


if __name__ == "__main__":
    main(parse(Args), given_flags())
