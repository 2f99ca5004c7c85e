"""Behavioural cloning of expert LR schedules with a transformer actor-critic.

One BC policy per expert and one on all of them combined, each evaluated against its
expert(s) on held-out seeds (``experiments.bc_pipeline.train_bc``); bad arguments are
refused in one line (exit status 2) before any work starts::

    python scripts/train_bc.py                                   # MLP on MNIST
    python scripts/train_bc.py --dataset digits --total-steps 640  # env options: see --help
    python scripts/train_bc.py --demos runs/demos        # reuse (or save) demonstrations there
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Annotated

import tyro

from agents.bc import BCConfig
from common.cli import parse
from envs.options import EnvOptions
from experiments.bc_pipeline import check_bc_args, train_bc
from experts.demos import ExpertName


@dataclass(frozen=True)
class Args:
    """Behavioural cloning of expert schedules.

    Attributes:
        env: registered env id.
        options: env options (None keeps the id's default).
        experts: expert schedules to imitate.
        combined: also train one policy on all the experts' demonstrations together.
        demo_episodes: demonstration episodes per expert (seeds 0, 1, ...).
        selection_episodes: held-out demonstrations per expert (seeds 500, ...) on which the
            BC epoch with the lowest action error is kept (0: keep the last epoch).
        eval_episodes: held-out evaluation episodes (seeds 1000, 1001, ...).
        epochs: BC epochs over the demonstrations.
        critic_epochs: epochs of critic fitting.
        batch_size: BC minibatch size.
        lr: Adam learning rate for BC and the critic.
        demos: folder of saved demonstrations to reuse (collected there if missing); they
            must be of this env, its options and the seeds this run asks for.
        seed: seed of BC training.
        out: root folder of run directories.
        progress: show progress bars.
    """

    env: str = "LRSchedule-MLP-v0"
    options: Annotated[EnvOptions, tyro.conf.OmitArgPrefixes] = field(default_factory=EnvOptions)
    experts: tuple[ExpertName, ...] = ("linear_warmup", "cosine", "polynomial")
    combined: bool = True
    demo_episodes: int = 8
    selection_episodes: int = 2
    eval_episodes: int = 3
    epochs: int = 200
    critic_epochs: int = 60
    batch_size: int = 32
    lr: float = 1e-3
    demos: str | None = None
    seed: int = 0
    out: str = "runs"
    progress: bool = True

    def __post_init__(self) -> None:
        check_bc_args(
            self.env,
            self.experts,
            options=self.options,
            demos=self.demos,
            demo_episodes=self.demo_episodes,
            eval_episodes=self.eval_episodes,
            selection_episodes=self.selection_episodes,
        )


def main(args: Args) -> dict:
    """Collect demonstrations, clone, evaluate; write policies, metrics, plots."""
    bc_config = BCConfig(
        epochs=args.epochs, critic_epochs=args.critic_epochs, batch_size=args.batch_size, lr=args.lr
    )
    folder, report = train_bc(
        args.env,
        args.experts,
        options=args.options,
        combined=args.combined,
        seed=args.seed,
        demo_episodes=args.demo_episodes,
        selection_episodes=args.selection_episodes,
        eval_episodes=args.eval_episodes,
        bc_config=bc_config,
        demos=args.demos,
        out=args.out,
        progress=args.progress,
        record=asdict(args),
    )
    print(f"wrote {folder / 'metrics.json'}")
    return report


if __name__ == "__main__":
    main(parse(Args))
