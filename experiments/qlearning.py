"""Tabular Q-learning jobs: learning the LR over training runs; the baseline-vs-Q-learning study.

:func:`train_qlearning` (behind ``scripts/train_qlearning.py``) learns one table over
successive training runs of an env. :func:`run_experiment` (behind
``scripts/run_experiment.py``) trains the GPT on each character corpus present with every
run type (``RUN_TYPES``: the warm-up + cosine baseline and Q-learning variants), with
per-seed metrics, summaries (mean ± standard error), tables, curves and plots.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from agents.qlearning import QLearningAgent, QLearningConfig, learn_episode
from common.files import atomic_write_text, run_dir, write_csv, write_json
from common.plots import Panel, save_panels
from common.tensorboard import log_hyperparameters
from envs.options import EnvOptions
from envs.rollout import run_episode
from evaluation.suite import check_training_env
from experts.policy import SchedulePolicy
from experts.schedules import Cosine
from trainees.data.chars import CORPORA
from trainees.data.resolve import OFFLINE_ENV, DatasetNotFoundError

METRICS = (
    "final_train_loss",
    "best_val_loss",
    "total_train_time",
    "avg_inference_tokens_per_second",
)

# Each run type: how the LR is chosen. "schedule" runs use the continuous env with the
# warm-up + cosine expert; "qlearning" runs the discrete env, acting every eval interval.
RUN_TYPES: dict[str, dict[str, Any]] = {
    "baseline_cosine": dict(kind="schedule"),
    "qlearning": dict(kind="qlearning", reward="neg_val_loss"),
    "qlearning_low_initial_lr": dict(kind="qlearning", reward="neg_val_loss", initial_lr_mult=0.3),
    "qlearning_improvement": dict(kind="qlearning", reward="val_improvement"),
    "qlearning_eps_decay": dict(
        kind="qlearning", reward="neg_val_loss", epsilon=0.5, epsilon_decay=0.95, epsilon_min=0.01
    ),
}
# the names of RUN_TYPES, as a type (tests keep the two equal)
RunType = Literal[
    "baseline_cosine",
    "qlearning",
    "qlearning_low_initial_lr",
    "qlearning_improvement",
    "qlearning_eps_decay",
]
QLEARNING_REWARDS = ("neg_val_loss", "val_improvement")  # rewards of the tabular agent


def qlearning_options(
    base: EnvOptions, *, reward: str, interval: int, initial_lr_mult: float = 1.0
) -> EnvOptions:
    """Env options for a Q-learning agent: discrete factor actions, one per evaluation."""
    return dataclasses.replace(
        base,
        action_type="discrete",
        reward=reward,
        eval_every=interval,
        steps_per_action=interval,
        initial_lr_mult=initial_lr_mult,
    )


def run_options(run: dict[str, Any], base: EnvOptions, *, interval: int) -> EnvOptions:
    """Env options of a run type, on top of ``base`` (dataset, preset, budget)."""
    if run["kind"] == "qlearning":
        return qlearning_options(
            base,
            reward=run["reward"],
            interval=interval,
            initial_lr_mult=run.get("initial_lr_mult", 1.0),
        )
    return dataclasses.replace(base, eval_every=interval, steps_per_action=interval)


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (0 for a single value)."""
    a = np.asarray(values, dtype=np.float64)
    se = float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else 0.0
    return float(a.mean()), se


def summarize(per_seed: Sequence[dict[str, float]]) -> dict[str, dict[str, float]]:
    """``{metric: {"mean", "se", "n"}}`` over the seeds' final infos (metrics present in all)."""
    out = {}
    for m in METRICS:
        values = [r[m] for r in per_seed if m in r]
        if len(values) == len(per_seed) and values:
            mean, se = mean_se(values)
            out[m] = {"mean": mean, "se": se, "n": len(values)}
    return out


def markdown_table(summaries: dict[str, dict[str, dict[str, float]]]) -> str:
    """A markdown table: one row per run type, ``mean ± se`` per metric."""
    lines = ["| run | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
    for run, summary in summaries.items():
        cells = [
            f"{summary[m]['mean']:.4g} ± {summary[m]['se']:.2g}" if m in summary else "—"
            for m in METRICS
        ]
        lines.append(f"| {run} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def mean_curves(
    rows: Sequence[dict[str, Any]], key: str
) -> dict[str, tuple[list[int], list[float]]]:
    """Per run type (``row["run"]``), the mean over seeds of ``row[key]`` at each step."""
    out = {}
    for run in dict.fromkeys(r["run"] for r in rows):
        by_step: dict[int, list[float]] = {}
        for r in rows:
            if r["run"] == run:
                by_step.setdefault(r["step"], []).append(r[key])
        steps = sorted(by_step)
        out[run] = (steps, [float(np.mean(by_step[s])) for s in steps])
    return out


# --- learning over training runs (scripts/train_qlearning.py) -------------------------


def check_qlearning_reward(reward: str | None) -> None:
    """Raise ValueError (naming the valid ones) for a reward the tabular agent does not take."""
    if reward not in (None, *QLEARNING_REWARDS):
        raise ValueError(
            f"--reward {reward!r} is invalid for Q-learning; valid: {', '.join(QLEARNING_REWARDS)}"
        )


def train_qlearning(
    env_id: str = "LRSchedule-GPT-v0",
    *,
    options: EnvOptions | None = None,
    episodes: int = 5,
    interval: int = 100,
    config: QLearningConfig | None = None,
    table: str | Path | None = None,
    seed: int = 0,
    out: str | Path = "runs",
    record: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Learn one Q-table over ``episodes`` training runs of ``env_id``; log and save it.

    The agent acts at every evaluation with discrete factor actions
    (:func:`qlearning_options`: the reward is ``options.reward`` or neg_val_loss, the
    initial LR multiple ``options.initial_lr_mult`` or 1). Writes, into a new run folder
    under ``out``, TensorBoard logs, ``qtable.npz`` (after every run, so an interrupted
    job keeps its table) and ``metrics.json``.

    Args:
        env_id: a registered id.
        options: env options (None keeps the id's default).
        episodes: training runs to learn over (seeds ``seed``, ``seed + 1``, ...).
        interval: optimizer steps between evaluations; the agent acts at each.
        config: the agent's settings (a new table only).
        table: a saved table to continue from.
        seed: seed of the agent and of the first training run.
        out: root folder of run directories.
        record: the command's arguments, stored as the metrics' ``args`` and logged to
            TensorBoard.

    Returns:
        The metrics written: ``args``, ``episodes`` (per run) and ``table`` (its path).
    """
    options = options or EnvOptions()
    record = dict(record or {})
    options = qlearning_options(
        options,
        reward=options.reward or "neg_val_loss",
        interval=interval,
        initial_lr_mult=options.initial_lr_mult or 1.0,
    )
    check_training_env(env_id, options.kwargs(), "the Q-learning env")
    env = options.make(env_id)
    total_steps = env.unwrapped.trainee.total_steps
    config = config or QLearningConfig()
    agent = (
        QLearningAgent.load(table, seed=seed)
        if table
        else QLearningAgent(env.action_space.n, config, seed=seed)
    )
    folder = run_dir(out, env_id, "train_qlearning", seed)
    writer = SummaryWriter(folder)
    log_hyperparameters(writer, record)
    runs = []
    for episode in tqdm(range(episodes), desc="Q-learning runs"):
        run = learn_episode(env, agent, seed=seed + episode)
        for info, reward in zip(run.infos, run.rewards, strict=True):
            step = episode * total_steps + info["step"]
            writer.add_scalar("train/lr", info["lr"], step)
            writer.add_scalar("train/val_loss", info["val_loss"], step)
            writer.add_scalar("train/reward", reward, step)
        final = run.final
        writer.add_scalar("episode/best_val_loss", final["best_val_loss"], episode)
        writer.add_scalar("episode/return", run.episode_return, episode)
        writer.add_scalar("episode/epsilon", agent.epsilon, episode)
        runs.append(
            {
                "seed": seed + episode,
                "best_val_loss": final["best_val_loss"],
                "final_train_loss": final["final_train_loss"],
                "return": run.episode_return,
                "actions": run.actions.tolist(),
                "lrs": run.lrs.tolist(),
            }
        )
        tqdm.write(
            f"run {episode}: best val {final['best_val_loss']:.4f}, epsilon {agent.epsilon:.3f}"
        )
        agent.save(folder / "qtable.npz")  # after every run: an interrupted job keeps its table
    writer.close()
    report = {"args": record, "episodes": runs, "table": str(folder / "qtable.npz")}
    write_json(folder / "metrics.json", report)
    return report


# --- the baseline-vs-Q-learning experiment (scripts/run_experiment.py) ------------------


def check_experiment_args(datasets: Iterable[str], runs: Iterable[str], n_seeds: int) -> None:
    """Raise ValueError (naming the valid values) for an unknown corpus or run type, or no seeds."""
    for flag, given, valid in (
        ("--dataset", datasets, CORPORA),
        ("--runs", runs, tuple(RUN_TYPES)),
    ):
        unknown = sorted(set(given) - set(valid))
        if unknown:
            raise ValueError(f"{flag} {unknown} invalid; valid: {', '.join(valid)}")
    if n_seeds < 1:
        raise ValueError(f"--n-seeds {n_seeds} is invalid; expected an integer >= 1")


def one_run(
    env: gym.Env, agent: QLearningAgent | None, seed: int, *, warmup: float = 0.05
) -> list[dict[str, Any]]:
    """Per-action infos of one training run: the agent's (learning), or warm-up + cosine's."""
    if agent is None:
        policy = SchedulePolicy(Cosine(warmup=warmup), env.action_space)
        return run_episode(env, policy, seed).infos
    return learn_episode(env, agent, seed).infos


def make_agent(run: Mapping[str, Any], seed: int) -> QLearningAgent:
    """A fresh Q-learning agent with the run type's exploration settings."""
    keys = ("epsilon", "epsilon_decay", "epsilon_min")
    return QLearningAgent(3, QLearningConfig(**{k: run[k] for k in keys if k in run}), seed)


@contextlib.contextmanager
def downloads(*, allowed: bool) -> Iterator[None]:
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


def run_dataset(
    dataset: str,
    preset: str,
    folder: Path,
    writer: SummaryWriter,
    *,
    runs: Sequence[str],
    n_seeds: int,
    total_steps: int,
    interval: int,
    warmup: float,
    download: bool,
    record: Mapping[str, Any],
) -> dict[str, Any] | None:
    """All run types on one corpus, written into ``folder``; None when its data is missing.

    Writes ``results_<dataset>.json`` (with ``record`` as ``args``), ``.md``,
    ``runs_<dataset>.csv``, the Q-tables and the loss and LR plots (with their CSVs).
    """
    rows, results = [], {}
    for run_name in runs:
        run = RUN_TYPES[run_name]
        options = run_options(
            run,
            EnvOptions(dataset=dataset, preset=preset, total_steps=total_steps),
            interval=interval,
        )
        try:
            with downloads(allowed=download):
                env = options.make("LRSchedule-GPT-v0")
        except DatasetNotFoundError as e:
            hint = "" if download else " (not present locally; --download fetches it)"
            print(f"skipping {dataset}: {str(e).splitlines()[0]}{hint}")
            return None
        agent = make_agent(run, seed=0) if run["kind"] == "qlearning" else None
        finals = []
        for seed in tqdm(range(n_seeds), desc=f"{dataset} {run_name}"):
            infos = one_run(env, agent, seed, warmup=warmup)
            finals.append({k: v for k, v in infos[-1].items() if isinstance(v, int | float)})
            for info in infos:
                rows.append(
                    {
                        "run": run_name,
                        "seed": seed,
                        "step": info["step"],
                        "lr": info["lr"],
                        "train_loss": info["train_loss"],
                        "val_loss": info["val_loss"],
                    }
                )
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
        print(
            f"{dataset} {run_name}: "
            + ", ".join(
                f"{m} {s['mean']:.4g} ± {s['se']:.2g}"
                for m, s in results[run_name]["summary"].items()
            )
        )
    table = markdown_table({r: v["summary"] for r, v in results.items()})
    write_json(
        folder / f"results_{dataset}.json",
        {"args": dict(record), "preset": preset, "results": results},
    )
    atomic_write_text(folder / f"results_{dataset}.md", table + "\n")
    write_csv(folder / f"runs_{dataset}.csv", rows)
    for key, label in (
        ("train_loss", "train loss (minibatch)"),
        ("val_loss", "validation loss"),
        ("lr", "learning rate"),
    ):
        panel = Panel(
            f"{key}_{dataset}", "optimizer step", label, mean_curves(rows, key), logy=True
        )
        save_panels(folder / f"{key}_{dataset}.png", [panel])
    print(table)
    return results


def run_experiment(
    datasets: Sequence[str] = CORPORA,
    *,
    download: bool = False,
    preset: str | None = None,
    runs: Sequence[str] = tuple(RUN_TYPES),
    n_seeds: int = 3,
    total_steps: int = 2000,
    interval: int = 100,
    warmup: float = 0.05,
    out: str | Path = "runs",
    record: Mapping[str, Any] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """:func:`run_dataset` of every corpus present (or, with ``download``, that can be fetched).

    Args:
        datasets: corpora to try; those not present locally are skipped with a message
            (downloaded only with ``download``).
        download: download a corpus that is not present locally.
        preset: GPT preset (None: small on a GPU, tiny on a CPU).
        runs: run types (``RUN_TYPES``).
        n_seeds: training runs per run type (seeds 0, 1, ...).
        total_steps: optimizer steps per training run.
        interval: optimizer steps between evaluations, where the Q-agent acts.
        warmup: warm-up fraction of the cosine baseline.
        out: root folder of run directories (one new run folder holds every corpus).
        record: the command's arguments, stored as each results JSON's ``args``.

    Returns:
        The run folder, and the results by corpus (the corpora run).
    """
    preset = preset or ("small" if torch.cuda.is_available() else "tiny")
    folder = run_dir(out, "LRSchedule-GPT-v0", "run_experiment", 0)
    writer = SummaryWriter(folder / "tb")
    report = {}
    for dataset in datasets:
        result = run_dataset(
            dataset,
            preset,
            folder,
            writer,
            runs=runs,
            n_seeds=n_seeds,
            total_steps=total_steps,
            interval=interval,
            warmup=warmup,
            download=download,
            record=record or {},
        )
        if result is not None:
            report[dataset] = result
    writer.close()
    return folder, report
