"""PPO fine-tuning from a BC policy file: the learned scheduler's second stage.

The job, its safeguards, checkpoints and resume are ``experiments.ppo_job``'s::

    python scripts/finetune_ppo.py --init runs/.../policies/bc_cosine.pt
    python scripts/finetune_ppo.py --init bc_cosine.pt --no-safeguards      # the ablation
    python scripts/finetune_ppo.py --resume RUN_DIR --total-timesteps 12288   # extend a run
"""

from __future__ import annotations

import dataclasses
from collections.abc import Set
from dataclasses import asdict, dataclass, field
from typing import Annotated, Literal

import tyro

from agents.ppo import FinetuneConfig
from common.cli import ArgumentError, fail, given_flags, parse
from envs.options import EnvOptions
from experiments.ppo_job import check_finetune_args, finetune_run, resumed_args


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
        check_finetune_args(vars(self))


def main(args: Args, flags: Set[str] = frozenset()) -> dict:
    """Start (or resume) a fine-tuning run; returns its metrics. ``flags``: those given."""
    if args.resume:
        try:
            args = resumed_args(args, flags)
        except ArgumentError as e:
            fail(str(e))
    folder, metrics = finetune_run(
        args.init,
        resume=args.resume,
        out=args.out,
        env_id=args.env,
        seed=args.seed,
        record=asdict(dataclasses.replace(args, resume=None)),
        options=args.options,
        config=args.ppo if args.safeguards else args.ppo.without_safeguards(),
        total_timesteps=args.total_timesteps,
        n_envs=args.n_envs,
        eval_every=args.eval_rollouts,
        eval_episodes=args.eval_episodes,
        checkpoint_every=args.checkpoint_rollouts,
        report_episodes=args.report_episodes,
        expert=args.expert,
        progress=args.progress,
        device=args.device,
    )
    print(f"wrote {folder / 'metrics.json'}")
    return metrics


if __name__ == "__main__":
    main(parse(Args), given_flags())
