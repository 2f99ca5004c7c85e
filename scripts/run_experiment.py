"""Baseline (warm-up + cosine) vs tabular Q-learning LR control on character corpora.

For each corpus whose data is present locally (tiny Shakespeare; enwik8 and text8 when
found), each run type trains the GPT on several seeds. A corpus that is not present is
skipped with a message, never downloaded, unless ``--download`` is given. A Q-learning
run type keeps one table across its seeds, so the agent learns over successive training
runs. Writes per dataset
``results_<dataset>.json``, ``results_<dataset>.md`` (mean ± standard error over seeds),
``runs_<dataset>.csv`` (LR, train and validation loss of every run) and the plots
``train_loss_<dataset>.png``, ``val_loss_<dataset>.png`` and ``lr_<dataset>.png`` (means
over seeds per run type, each with its CSV)::

    python scripts/run_experiment.py --n-seeds 3
    python scripts/run_experiment.py --dataset enwik8 --download   # fetch enwik8 if missing
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Annotated, Literal

import gymnasium as gym
import torch
import tyro
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from agents.qlearning import QLearningAgent, QLearningConfig, learn_episode
from common.cli import parse
from common.files import atomic_write_text, run_dir, write_csv, write_json
from common.plots import Panel, save_panels
from envs.options import EnvOptions
from envs.rollout import run_episode
from experiments.qlearning import RUN_TYPES, markdown_table, mean_curves, run_options, summarize
from experts.policy import SchedulePolicy
from experts.schedules import Cosine
from trainees.data.chars import CORPORA, CorpusName
from trainees.data.resolve import OFFLINE_ENV, DatasetNotFoundError
from trainees.language import GPTPreset

# the names of experiments.qlearning.RUN_TYPES, as a type (tests keep the two equal)
RunType = Literal[
    "baseline_cosine", "qlearning", "qlearning_low_initial_lr", "qlearning_improvement",
    "qlearning_eps_decay",
]  # fmt: skip


@dataclass(frozen=True)
class Args:
    """Baseline vs Q-learning.

    Attributes:
        dataset: corpora to try; those not present locally are skipped with a message
            (downloaded only with ``--download``).
        download: download a corpus that is not present locally (as the GPT trainee does
            by default, unless ``$LRGYM_OFFLINE`` is set).
        preset: GPT preset (None: small on a GPU, tiny on a CPU).
        runs: run types (``experiments.qlearning.RUN_TYPES``).
        n_seeds: training runs per run type (seeds 0, 1, ...).
        total_steps: optimizer steps per training run.
        interval: optimizer steps between evaluations, where the Q-agent acts.
        warmup: warm-up fraction of the cosine baseline.
        out: root folder of run directories.
    """

    dataset: Annotated[tuple[CorpusName, ...], tyro.conf.arg(aliases=("--datasets",))] = CORPORA
    download: bool = False
    preset: GPTPreset | None = None
    runs: tuple[RunType, ...] = tuple(RUN_TYPES)
    n_seeds: Annotated[int, tyro.conf.arg(aliases=("--seeds",))] = 3
    total_steps: int = 2000
    interval: int = 100
    warmup: float = 0.05
    out: str = "runs"

    def __post_init__(self) -> None:
        for flag, given, valid in (("--dataset", self.dataset, CORPORA),
                                   ("--runs", self.runs, tuple(RUN_TYPES))):  # fmt: skip
            unknown = sorted(set(given) - set(valid))
            if unknown:
                raise ValueError(f"{flag} {unknown} invalid; valid: {', '.join(valid)}")
        if self.n_seeds < 1:
            raise ValueError(f"--n-seeds {self.n_seeds} is invalid; expected an integer >= 1")


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
            with _downloads(allowed=args.download):
                env = options.make("LRSchedule-GPT-v0")
        except DatasetNotFoundError as e:
            hint = "" if args.download else " (not present locally; --download fetches it)"
            print(f"skipping {dataset}: {str(e).splitlines()[0]}{hint}")
            return None
        agent = make_agent(run, seed=0) if run["kind"] == "qlearning" else None
        finals = []
        for seed in tqdm(range(args.n_seeds), desc=f"{dataset} {run_name}"):
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


@contextlib.contextmanager
def _downloads(*, allowed: bool) -> Iterator[None]:
    """Within: datasets are downloaded only if ``allowed`` (and ``$LRGYM_OFFLINE`` permits)."""
    if allowed:
        yield
        return
    before = os.environ.get(OFFLINE_ENV)
    os.environ[OFFLINE_ENV] = "1"  # what every dataset lookup reads (trainees.data.resolve)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(OFFLINE_ENV, None)
        else:
            os.environ[OFFLINE_ENV] = before


def main(args: Args) -> dict:
    """Run every dataset whose data is present (or, with ``download``, can be fetched)."""
    preset = args.preset or ("small" if torch.cuda.is_available() else "tiny")
    folder = run_dir(args.out, "LRSchedule-GPT-v0", "run_experiment", 0)
    writer = SummaryWriter(folder / "tb")
    report = {}
    for dataset in args.dataset:
        result = run_dataset(dataset, preset, args, folder, writer)
        if result is not None:
            report[dataset] = result
    writer.close()
    print(f"results in {folder}")
    return report


if __name__ == "__main__":
    main(parse(Args))
