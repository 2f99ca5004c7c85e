"""Train the tabular Q-learning LR controller on the GPT env, acting at each evaluation.

The table persists across episodes (training runs) and is saved to ``qtable.npz``
(``experiments.qlearning.train_qlearning``); ``--table`` continues from a saved one::

    python scripts/train_qlearning.py --episodes 5

An unknown env id, or a reward other than neg_val_loss or val_improvement, is refused
in one line (exit status 2) before any work starts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Annotated

import tyro

from agents.qlearning import QLearningConfig
from common.cli import parse
from envs.options import EnvOptions, check_env_ids
from experiments.qlearning import check_qlearning_reward, train_qlearning


@dataclass(frozen=True)
class Args:
    """Tabular Q-learning of the learning rate.

    Attributes:
        env: registered env id (driven with discrete factor actions).
        options: env options (None keeps the id's default). The action type is discrete
            and the agent acts at every evaluation; ``--reward`` is neg_val_loss (default)
            or val_improvement; ``--initial-lr-mult`` defaults to 1.
        episodes: training runs to learn over.
        interval: optimizer steps between evaluations; the agent acts at each.
        alpha: Q-update learning rate.
        gamma: discount.
        epsilon: exploration rate.
        epsilon_decay: multiplies epsilon after every action.
        table: a saved table to continue from.
        seed: seed of the agent and of the first training run.
        out: root folder of run directories.
    """

    env: str = "LRSchedule-GPT-v0"
    options: Annotated[EnvOptions, tyro.conf.OmitArgPrefixes] = field(default_factory=EnvOptions)
    episodes: int = 5
    interval: int = 100
    alpha: float = 0.1
    gamma: float = 0.9
    epsilon: float = 0.1
    epsilon_decay: float = 1.0
    table: str | None = None
    seed: int = 0
    out: str = "runs"

    def __post_init__(self) -> None:
        check_env_ids(self.env)
        check_qlearning_reward(self.options.reward)


def main(args: Args) -> dict:
    """Learn over ``episodes`` training runs; log to TensorBoard; save the table."""
    config = QLearningConfig(
        alpha=args.alpha, gamma=args.gamma, epsilon=args.epsilon, epsilon_decay=args.epsilon_decay
    )
    report = train_qlearning(
        args.env,
        options=args.options,
        episodes=args.episodes,
        interval=args.interval,
        config=config,
        table=args.table,
        seed=args.seed,
        out=args.out,
        record=asdict(args),
    )
    print(f"table saved to {report['table']}")
    return report


if __name__ == "__main__":
    main(parse(Args))
