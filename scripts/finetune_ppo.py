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

Writes ``policies/ppo_final.pt``, ``policies/ppo_best.pt`` (``load_policy`` reads them),
``metrics.json``, ``history.json``, ``plots/`` (PNG + CSV) and TensorBoard logs (``tb/``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated

import tyro

from agents.policy import read_policy_file
from agents.ppo import FinetuneConfig, finetune
from envs.options import EnvOptions
from trainees.files import run_dir, write_json


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
        safeguards: the log_std reset, the critic warm-up and the KL penalty (--no-safeguards
            drops all three: the ablation).
        eval_rollouts: rollouts between held-out evaluations (the best policy is kept).
        eval_episodes: episodes per evaluation (model-selection seeds 500, ...).
        checkpoint_rollouts: rollouts between checkpoints.
        report_episodes: held-out seeds (1000, ...) of the final comparison with BC and the expert.
        expert: the expert of that comparison (default: from the ``bc_<expert>.pt`` name).
        seed: the run's seed.
        resume: a run folder to continue from its last checkpoint (its own arguments are used).
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
    device: str = "auto"


def stored_args(folder: Path) -> Args:
    """The arguments a run folder was started with."""
    data = json.loads((folder / "args.json").read_text())
    data["options"] = EnvOptions(**data["options"])
    data["ppo"] = FinetuneConfig(**data["ppo"])
    return Args(**data)


def main(args: Args) -> dict:
    """Start (or resume) a fine-tuning run; returns its metrics."""
    if args.resume:
        folder = Path(args.resume)
        args = dataclasses.replace(stored_args(folder), progress=args.progress, resume=args.resume)
    elif args.init is None:
        raise ValueError("give --init POLICY_FILE to start a run, or --resume RUN_DIR")
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
    main(tyro.cli(Args))
