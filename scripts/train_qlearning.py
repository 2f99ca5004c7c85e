"""Train the tabular Q-learning LR controller on the GPT env, acting at each evaluation.

The table persists across episodes (training runs) and is saved to ``qtable.npz``;
``--table`` continues from a saved one::

    python scripts/train_qlearning.py --episodes 5

An unknown env id, or a reward other than neg_val_loss or val_improvement, is refused
in one line (exit status 2) before any work starts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Annotated

import tyro
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from agents.qlearning import QLearningAgent, QLearningConfig, learn_episode
from common.cli import parse
from common.files import run_dir, write_json
from common.tensorboard import log_hyperparameters
from envs.options import EnvOptions, check_env_ids
from experiments.qlearning import qlearning_options

QLEARNING_REWARDS = ("neg_val_loss", "val_improvement")  # rewards of the tabular agent


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
        if self.options.reward not in (None, *QLEARNING_REWARDS):
            raise ValueError(
                f"--reward {self.options.reward!r} is invalid for Q-learning; "
                f"valid: {', '.join(QLEARNING_REWARDS)}"
            )


def main(args: Args) -> dict:
    """Learn over ``episodes`` training runs; log to TensorBoard; save the table."""
    reward = args.options.reward or "neg_val_loss"
    options = qlearning_options(
        args.options, reward=reward, interval=args.interval,
        initial_lr_mult=args.options.initial_lr_mult or 1.0,
    )  # fmt: skip
    env = options.make(args.env)
    total_steps = env.unwrapped.trainee.total_steps
    config = QLearningConfig(alpha=args.alpha, gamma=args.gamma, epsilon=args.epsilon,
                             epsilon_decay=args.epsilon_decay)  # fmt: skip
    agent = (QLearningAgent.load(args.table, seed=args.seed) if args.table
             else QLearningAgent(env.action_space.n, config, seed=args.seed))  # fmt: skip
    folder = run_dir(args.out, args.env, "train_qlearning", args.seed)
    writer = SummaryWriter(folder)
    log_hyperparameters(writer, args)
    episodes = []
    for episode in tqdm(range(args.episodes), desc="Q-learning runs"):
        run = learn_episode(env, agent, seed=args.seed + episode)
        for info, reward in zip(run.infos, run.rewards, strict=True):
            step = episode * total_steps + info["step"]
            writer.add_scalar("train/lr", info["lr"], step)
            writer.add_scalar("train/val_loss", info["val_loss"], step)
            writer.add_scalar("train/reward", reward, step)
        final = run.final
        writer.add_scalar("episode/best_val_loss", final["best_val_loss"], episode)
        writer.add_scalar("episode/return", run.episode_return, episode)
        writer.add_scalar("episode/epsilon", agent.epsilon, episode)
        episodes.append({"seed": args.seed + episode, "best_val_loss": final["best_val_loss"],
                         "final_train_loss": final["final_train_loss"],
                         "return": run.episode_return,
                         "actions": run.actions.tolist(), "lrs": run.lrs.tolist()})  # fmt: skip
        tqdm.write(
            f"run {episode}: best val {final['best_val_loss']:.4f}, epsilon {agent.epsilon:.3f}"
        )
        agent.save(folder / "qtable.npz")  # after every run: an interrupted job keeps its table
    writer.close()
    report = {"args": asdict(args), "episodes": episodes, "table": str(folder / "qtable.npz")}
    write_json(folder / "metrics.json", report)
    print(f"table saved to {folder / 'qtable.npz'}")
    return report


if __name__ == "__main__":
    main(parse(Args))
