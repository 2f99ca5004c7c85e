"""The tuning-free recipe: BC then DAgger from a privileged expert on a randomised base LR,
then (``--ppo-timesteps``) PPO with a privileged critic.

Each episode's base LR is drawn around the env's reference LR (``--spread``); the expert
runs its schedule at the reference whatever was drawn, and the policy, which never sees
the draw, learns to correct it (``experiments.tuningfree``)::

    python scripts/train_tuningfree.py --out runs/tuningfree/mlp_s0 --seed 0 --workers 2

Interrupted, the same command resumes at the first unfinished round. Writes
``policy.pt``, ``metrics.json``, ``rounds/``, ``plots/`` (PNG + CSV) and ``tb/``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Annotated, Literal

import tyro

from agents.bc import BCConfig
from common.cli import parse
from envs.options import EnvOptions, check_env_ids
from envs.rewards import RewardName
from evaluation.backends import make_backend
from experiments.task_mixture import load_tasks
from experiments.tuningfree import TuningFreeConfig, train_tuningfree
from experiments.tuningfree_ppo import PPOStage, check_stage
from experts.demos import ExpertName


@dataclass(frozen=True)
class Args:
    """Train a tuning-free LR policy.

    Attributes:
        out: the run folder (a resume reopens it).
        env: registered env id.
        options: env options (None keeps the id's default); the reference LR's when
            ``reference_lr`` is not given.
        reference_lr: the expert's LR (None: ``evaluation.reference_lrs``' entry).
        expert: the expert's schedule.
        spread: base LRs drawn in [reference / spread, reference x spread].
        demo_episodes: the expert's episodes of round 0 (BC).
        rounds: DAgger rounds after round 0.
        episodes_per_round: the policy's episodes per DAgger round.
        epochs: BC epochs of each round's fit (over the aggregate).
        tasks: a mixture file (``experiments/mixtures/*.json``): further trainees,
            datasets and budgets, each with its reference LR, whose episodes join every
            round (``experiments.task_mixture.MixTask``).
        episodes_per_extra_task: each further task's episodes per round.
        ppo_timesteps: PPO after the last round, privileged critic (0: no PPO stage); a
            resume may raise it.
        ppo_envs: PPO's envs in lockstep.
        ppo_envs_per_extra_task: with ``tasks``, each further task's PPO envs (a
            ``MixedVecEnv`` beside the ``ppo_envs`` of the main env).
        ppo_reward: the reward preset PPO trains with (None: the recipe's, ``--reward``);
            chosen after the DAgger rounds, it may differ from theirs.
        ppo_privileged_critic: PPO's critic is told each episode's task
            (``--no-ppo-privileged-critic``: it sees what the actor sees; the ablation).
        seed: the run seed (its own demonstration and RL-training seeds; 0..9).
        backend: local (processes) or ray.
        workers: local worker processes (Ray: CPUs), None for all cores.
        threads: torch threads per episode.
        ray_address: a Ray cluster's address (None starts a local instance).
        progress: progress bars.
    """

    out: str
    env: str = "LRSchedule-MLP-v0"
    options: Annotated[EnvOptions, tyro.conf.OmitArgPrefixes] = field(default_factory=EnvOptions)
    reference_lr: float | None = None
    expert: ExpertName = "linear_warmup"
    spread: float = 8.0
    demo_episodes: int = 16
    rounds: int = 4
    episodes_per_round: int = 16
    epochs: int = 30
    tasks: str | None = None
    episodes_per_extra_task: int = 4
    ppo_timesteps: int = 0
    ppo_envs: int = 8
    ppo_envs_per_extra_task: int = 2
    ppo_reward: RewardName | None = None
    ppo_privileged_critic: bool = True
    seed: int = 0
    backend: Literal["local", "ray"] = "local"
    workers: int | None = None
    threads: int = 1
    ray_address: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        check_env_ids(self.env)
        if self.options.base_lr_spread is not None:
            raise ValueError("--base-lr-spread is the recipe's --spread; give that instead")
        config = self.config()  # every value checked before any work
        check_env_ids(*(t.env_id for t in config.extra_tasks))
        config.reference()
        config.round_seeds(self.seed)
        check_stage(config, self.ppo_stage())

    def config(self) -> TuningFreeConfig:
        """The recipe's configuration."""
        return TuningFreeConfig(
            env_id=self.env,
            options=self.options.kwargs(),
            reference_lr=self.reference_lr,
            schedule=self.expert,
            spread=self.spread,
            demo_episodes=self.demo_episodes,
            rounds=self.rounds,
            episodes_per_round=self.episodes_per_round,
            bc=BCConfig(epochs=self.epochs, critic_epochs=0),
            extra_tasks=load_tasks(self.tasks) if self.tasks else (),
            episodes_per_extra_task=self.episodes_per_extra_task,
        )

    def ppo_stage(self) -> PPOStage:
        """The PPO stage (``timesteps`` 0: none)."""
        return PPOStage(
            timesteps=self.ppo_timesteps,
            n_envs=self.ppo_envs,
            envs_per_extra_task=self.ppo_envs_per_extra_task,
            reward=self.ppo_reward,
            privileged_critic=self.ppo_privileged_critic,
        )


def main(args: Args) -> dict:
    """Run (or resume) the recipe; print where the policy went."""
    backend = make_backend(
        args.backend, workers=args.workers, threads=args.threads, ray_address=args.ray_address
    )
    try:
        metrics = train_tuningfree(
            args.config(),
            args.out,
            seed=args.seed,
            backend=backend,
            progress=args.progress,
            record=asdict(args),
            ppo=args.ppo_stage(),
        )
    finally:
        backend.close()
    print(f"wrote {metrics['policy']} and {args.out}/metrics.json")
    return metrics


if __name__ == "__main__":
    main(parse(Args))
