"""Train the tabular Q-learning LR controller on the GPT env, acting at each evaluation.

The table persists across episodes (training runs) and is saved to ``qtable.npz``;
``--table`` continues from a saved one::

    python scripts/train_qlearning.py --episodes 5
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import gymnasium as gym
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from agents.cli import parse_args
from agents.experiment import qlearning_env_kwargs
from agents.qlearning import QLearningAgent, QLearningConfig, run_learning_episode
from agents.runs import log_hyperparameters, run_dir, write_json


@dataclass(frozen=True)
class Args:
    """Tabular Q-learning of the learning rate.

    Attributes:
        env: registered env id (driven with discrete factor actions).
        dataset: the GPT's corpus (None: the env's default).
        preset: GPT preset (None: the env's default).
        episodes: training runs to learn over.
        total_steps: optimizer steps per training run.
        interval: optimizer steps between evaluations; the agent acts at each.
        reward: neg_val_loss or val_improvement.
        initial_lr_mult: LR multiplier at the start of each run.
        alpha: Q-update learning rate.
        gamma: discount.
        epsilon: exploration rate.
        epsilon_decay: multiplies epsilon after every action.
        table: a saved table to continue from.
        seed: seed of the agent and of the first training run.
        out: root folder of run directories.
    """

    env: str = "LRSchedule-GPT-v0"
    dataset: str | None = None
    preset: str | None = None
    episodes: int = 5
    total_steps: int = 2000
    interval: int = 100
    reward: str = "neg_val_loss"
    initial_lr_mult: float = 1.0
    alpha: float = 0.1
    gamma: float = 0.9
    epsilon: float = 0.1
    epsilon_decay: float = 1.0
    table: str | None = None
    seed: int = 0
    out: str = "runs"


def main(args: Args) -> dict:
    """Learn over ``episodes`` training runs; log to TensorBoard; save the table."""
    if args.reward not in ("neg_val_loss", "val_improvement"):
        raise ValueError(
            f"--reward {args.reward!r} is invalid; valid: neg_val_loss, val_improvement"
        )
    kwargs = qlearning_env_kwargs(reward=args.reward, interval=args.interval,
                                  total_steps=args.total_steps, initial_lr_mult=args.initial_lr_mult)  # fmt: skip
    kwargs |= {
        k: v for k, v in (("dataset", args.dataset), ("preset", args.preset)) if v is not None
    }
    env = gym.make(args.env, **kwargs)
    config = QLearningConfig(alpha=args.alpha, gamma=args.gamma, epsilon=args.epsilon,
                             epsilon_decay=args.epsilon_decay)  # fmt: skip
    agent = (QLearningAgent.load(args.table, seed=args.seed) if args.table
             else QLearningAgent(env.action_space.n, config, seed=args.seed))  # fmt: skip
    folder = run_dir(args.out, args.env, "train_qlearning", args.seed)
    writer = SummaryWriter(folder)
    log_hyperparameters(writer, args)
    episodes = []
    for episode in tqdm(range(args.episodes), desc="Q-learning runs"):
        log = run_learning_episode(env, agent, seed=args.seed + episode)
        for row in log:
            step = episode * args.total_steps + row["step"]
            writer.add_scalar("train/lr", row["lr"], step)
            writer.add_scalar("train/val_loss", row["val_loss"], step)
            writer.add_scalar("train/reward", row["reward"], step)
        final = log[-1]
        writer.add_scalar("episode/best_val_loss", final["best_val_loss"], episode)
        writer.add_scalar("episode/return", sum(r["reward"] for r in log), episode)
        writer.add_scalar("episode/epsilon", agent.epsilon, episode)
        episodes.append({"seed": args.seed + episode, "best_val_loss": final["best_val_loss"],
                         "final_train_loss": final["final_train_loss"],
                         "actions": [r["action"] for r in log], "lrs": [r["lr"] for r in log]})  # fmt: skip
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
    main(parse_args(Args))
