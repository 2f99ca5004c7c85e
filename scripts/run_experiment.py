"""Baseline (warm-up + cosine) vs tabular Q-learning LR control on character corpora.

For each dataset whose data is present (tiny Shakespeare; enwik8 and text8 when found),
each run type trains the GPT on several seeds. A Q-learning run type keeps one table
across its seeds, so the agent learns over successive training runs. Writes per dataset
``results_<dataset>.json``, ``results_<dataset>.md`` (mean ± standard error over seeds),
``runs_<dataset>.csv`` (LR, train and validation loss of every run) and the plots
``train_loss_<dataset>.png``, ``val_loss_<dataset>.png`` and ``lr_<dataset>.png`` (means
over seeds per run type, each with its CSV)::

    python scripts/run_experiment.py --seeds 3
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import gymnasium as gym
import torch
import tyro
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from agents.experiment import RUN_TYPES, markdown_table, mean_curves, run_options, summarize
from agents.plots import Panel, save_panels
from agents.qlearning import QLearningAgent, QLearningConfig, learn_episode
from envs.options import EnvOptions
from envs.rollout import run_episode
from experts.policy import SchedulePolicy
from experts.schedules import Cosine
from trainees.data.resolve import DatasetNotFoundError
from trainees.files import atomic_write_text, run_dir, write_csv, write_json


@dataclass(frozen=True)
class Args:
    """Baseline vs Q-learning.

    Attributes:
        datasets: corpora to try; those whose data is missing are skipped with a message.
        preset: GPT preset (None: small on a GPU, tiny on a CPU).
        runs: run types (baseline_cosine, qlearning, qlearning_low_initial_lr, qlearning_improvement, qlearning_eps_decay).
        seeds: training runs per run type (seeds 0, 1, ...).
        total_steps: optimizer steps per training run.
        interval: optimizer steps between evaluations, where the Q-agent acts.
        warmup: warm-up fraction of the cosine baseline.
        out: root folder of run directories.
    """

    datasets: tuple[str, ...] = ("shakespeare_char", "enwik8", "text8")
    preset: str | None = None
    runs: tuple[str, ...] = tuple(RUN_TYPES)
    seeds: int = 3
    total_steps: int = 2000
    interval: int = 100
    warmup: float = 0.05
    out: str = "runs"


def one_run(env: gym.Env, agent: QLearningAgent | None, args: Args, seed: int) -> list[dict]:
    """Per-action infos of one training run of a run type."""
    if agent is None:
        policy = SchedulePolicy(Cosine(warmup=args.warmup), env.action_space)
        return run_episode(env, policy, seed).infos
    return learn_episode(env, agent, seed).infos


def make_agent(run: dict, seed: int) -> QLearningAgent:
    """A fresh Q-learning agent with the run type's exploration settings."""
    keys = ("epsilon", "epsilon_decay", "epsilon_min")
    return QLearningAgent(3, QLearningConfig(**{k: run[k] for k in keys if k in run}), seed)


def run_dataset(
    dataset: str, preset: str, args: Args, folder, writer: SummaryWriter
) -> dict | None:
    """All run types on one dataset; None when its data is missing."""
    rows, results = [], {}
    for run_name in args.runs:
        run = RUN_TYPES[run_name]
        options = run_options(
            run, EnvOptions(dataset=dataset, preset=preset, total_steps=args.total_steps),
            interval=args.interval,
        )  # fmt: skip
        try:
            env = options.make("LRSchedule-GPT-v0")
        except DatasetNotFoundError as e:
            print(f"skipping {dataset}: {str(e).splitlines()[0]}")
            return None
        agent = make_agent(run, seed=0) if run["kind"] == "qlearning" else None
        finals = []
        for seed in tqdm(range(args.seeds), desc=f"{dataset} {run_name}"):
            infos = one_run(env, agent, args, seed)
            finals.append({k: v for k, v in infos[-1].items() if isinstance(v, int | float)})
            for info in infos:
                rows.append({"run": run_name, "seed": seed, "step": info["step"], "lr": info["lr"],
                             "train_loss": info["train_loss"], "val_loss": info["val_loss"]})  # fmt: skip
                writer.add_scalar(f"{dataset}/{run_name}/seed{seed}/lr", info["lr"], info["step"])
                writer.add_scalar(
                    f"{dataset}/{run_name}/seed{seed}/val_loss", info["val_loss"], info["step"]
                )
        if agent is not None:
            agent.save(folder / f"qtable_{dataset}_{run_name}.npz")
        results[run_name] = {
            "env_kwargs": options.kwargs(),
            "per_seed": finals,
            "summary": summarize(finals),
        }
        print(f"{dataset} {run_name}: " + ", ".join(
            f"{m} {s['mean']:.4g} ± {s['se']:.2g}" for m, s in results[run_name]["summary"].items()))  # fmt: skip
    table = markdown_table({r: v["summary"] for r, v in results.items()})
    write_json(
        folder / f"results_{dataset}.json",
        {"args": asdict(args), "preset": preset, "results": results},
    )
    atomic_write_text(folder / f"results_{dataset}.md", table + "\n")
    write_csv(folder / f"runs_{dataset}.csv", rows)
    for key, label in (("train_loss", "train loss (minibatch)"), ("val_loss", "validation loss"),
                       ("lr", "learning rate")):  # fmt: skip
        panel = Panel(
            f"{key}_{dataset}", "optimizer step", label, mean_curves(rows, key), logy=True
        )
        save_panels(folder / f"{key}_{dataset}.png", [panel])
    print(table)
    return results


def main(args: Args) -> dict:
    """Run every dataset whose data is present."""
    unknown = sorted(set(args.runs) - set(RUN_TYPES))
    if unknown:
        raise ValueError(f"--runs {unknown} invalid; valid: {', '.join(RUN_TYPES)}")
    preset = args.preset or ("small" if torch.cuda.is_available() else "tiny")
    folder = run_dir(args.out, "LRSchedule-GPT-v0", "run_experiment", 0)
    writer = SummaryWriter(folder / "tb")
    report = {}
    for dataset in args.datasets:
        result = run_dataset(dataset, preset, args, folder, writer)
        if result is not None:
            report[dataset] = result
    writer.close()
    print(f"results in {folder}")
    return report


if __name__ == "__main__":
    main(tyro.cli(Args))
