"""The tuning-free recipe behind ``scripts/train_tuningfree.py``: one policy that corrects
the base LR it is given.

Stages, each resumable from the run folder:

1. **Reference LR** of the env (``evaluation.reference_lrs``, or the caller's): the LR at
   which the privileged expert (``experts.privileged``) runs its schedule.
2. **Round 0 (BC)**: the expert's own episodes on the randomised task (each episode's base
   LR drawn log-uniformly in ``[reference / spread, reference · spread]``), cloned.
3. **DAgger rounds**: the current policy's episodes on the same task, every visited state
   relabelled with the expert's action there, aggregated, refitted
   (``agents.dagger.dagger_round``).
4. **PPO** (optional, ``experiments.tuningfree_ppo``): fine-tuning of the last DAgger
   policy on the same task distribution with a privileged critic and the KL-to-start
   safeguard; written to ``ppo/`` and ``policy_ppo.pt``.

A mixture (``experiments.task_mixture``: further trainees, datasets or budgets, each with
its own reference LR) adds its tasks' episodes to round 0 and every DAgger round.

Episodes run on an evaluation backend (local processes or Ray): the policy of a round is
written to its file first and every worker loads it. After each round the folder holds
``rounds/<r>/policy.pt``, the round's labelled states (``data.npz``) and its record
(``record.json``, written last: a round is done when it exists), so a killed job resumes
at the first unfinished round and ends exactly as an uninterrupted one (each round's fit
draws from its own generator, seeded by the run seed and the round). A resume may ask
for another number of rounds: round r's seeds do not depend on it, so a finished run is
extended, or a run is ended at an earlier round, with the same rounds as a run of that
length from the start.

Per round the record holds the action error (on the round's own states before the refit,
and on the expert's episodes of model-selection seeds after it) and, on model-selection
seeds at base LRs ``reference · 2^k``, the policy's best and final validation losses
beside the expert's (its schedule at the reference LR) on the same seeds. Nothing here
reads the test split (the final evaluation's, ``evaluation.runs``), and nothing selects on
the checks: the final policy is the last round's. Seeds: round 0 from the run seed's
share of the demonstration range, later rounds from its RL-training block, checks from
model-selection seeds and the LR curves from a held-out one; final evaluations (the LR
sweep) use none of them.

(The configuration is ``experiments.tuningfree_config``'s, re-exported here; the PPO stage
and the mixtures live in their own modules. Next to move out, if this grows: the
per-round checks and plots, ``loss_check``, ``lr_curves`` and ``plot_run``.)
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from imitation.data.types import TrajectoryWithRew
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from agents.dagger import DAggerConfig, dagger_round, relabel
from agents.policy import load_policy, make_policy, save_policy
from common import seeds as seed_ranges
from common.files import atomic_write_bytes, write_json
from common.plots import Panel, save_panels
from common.tensorboard import log_hyperparameters
from envs.rollout import Episode, run_episode
from evaluation.backends import Backend, LocalBackend
from experiments.task_mixture import MixTask, check_tasks, per_task, task_kwargs
from experiments.tuningfree_config import TuningFreeConfig  # also this module's, for callers
from experiments.tuningfree_ppo import PPOStage, check_stage, ppo_stage
from experts.privileged import PrivilegedSchedulePolicy
from experts.schedules import make_schedule


# -- episodes on a backend ---------------------------------------------------------------
@dataclass(frozen=True)
class RolloutItem:
    """One episode for a backend worker: who acts, in which env, from which seed.

    Attributes:
        env_id, kwargs: the env (``gym.make`` keyword arguments as sorted pairs).
        policy_file: the policy's file; None: the expert acts.
        schedule, reference_lr: the expert (privileged under a drawn base LR).
        seed: the env seed.
    """

    env_id: str
    kwargs: tuple[tuple[str, Any], ...]
    policy_file: str | None
    schedule: str
    reference_lr: float
    seed: int


_ENVS: dict[tuple, gym.Env] = {}  # per worker: data loaded once per env


def rollout(item: RolloutItem, threads: int = 1) -> Episode:
    """Run one item's episode (a pure function of the item). The recipe reads validation
    losses only: the test split is the final evaluation's (``evaluation.runs``)."""
    import torch

    torch.set_num_threads(threads)
    key = (item.env_id, tuple((k, repr(v)) for k, v in item.kwargs))
    if key not in _ENVS:
        if len(_ENVS) >= 8:
            _ENVS.pop(next(iter(_ENVS))).close()
        _ENVS[key] = gym.make(item.env_id, **dict(item.kwargs))
    env = _ENVS[key]
    if item.policy_file is None:
        expert = PrivilegedSchedulePolicy(
            make_schedule(item.schedule), env.action_space, item.reference_lr
        )
        from agents.dagger import ExpertActor

        actor: Any = ExpertActor(expert, env)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a fixed base LR is a deliberate transfer
            actor = load_policy(item.policy_file, env.unwrapped, allow_mismatch=True, device="cpu")
    return run_episode(env, actor, item.seed)


def run_items(
    backend: Backend, items: Sequence[RolloutItem], desc: str, progress: bool
) -> list[Episode]:
    """Every item's episode, in the items' order, run on ``backend``."""
    out: list[Any] = [None] * len(items)
    done = backend.map_unordered(_indexed, list(enumerate(items)))
    for n, result in tqdm(done, total=len(items), desc=desc, disable=not progress):
        out[n] = result
    return out


def _indexed(pair: tuple[int, RolloutItem], threads: int) -> tuple[int, Episode]:
    return pair[0], rollout(pair[1], threads)


# -- the run folder ------------------------------------------------------------------------
def _save_round(folder: Path, trajectories: Sequence[TrajectoryWithRew]) -> None:
    import io

    buf = io.BytesIO()
    arrays = {}
    for i, t in enumerate(trajectories):
        arrays[f"obs_{i}"], arrays[f"acts_{i}"] = t.obs, t.acts
        arrays[f"rews_{i}"] = t.rews
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(folder / "data.npz", buf.getvalue())


def _load_round(folder: Path) -> list[TrajectoryWithRew]:
    with np.load(folder / "data.npz") as z:
        n = sum(1 for k in z.files if k.startswith("obs_"))
        return [
            TrajectoryWithRew(
                obs=z[f"obs_{i}"],
                acts=z[f"acts_{i}"],
                infos=None,
                terminal=True,
                rews=z[f"rews_{i}"],
            )
            for i in range(n)
        ]


def _check(ks: Sequence[int], n: int) -> list[tuple[int, int]]:
    seeds = seed_ranges.take("model_selection", n)
    return [(k, s) for k in ks for s in seeds]


def _fixed_items(
    cfg: TuningFreeConfig,
    reference: float,
    policy_file: str | None,
    pairs: Sequence[tuple[int, int]],
) -> list[RolloutItem]:
    """One rollout per ``(k, seed)`` from the fixed base LR ``reference · 2^k``: the
    policy's, or (``policy_file`` None) the expert's."""
    return [
        RolloutItem(
            cfg.env_id,
            _fixed_kwargs(cfg.options, reference * 2.0**k),
            policy_file,
            cfg.schedule,
            reference,
            s,
        )
        for k, s in pairs
    ]


def _fixed_kwargs(base: dict[str, Any], lr: float) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((base | {"base_lr": lr, "base_lr_spread": 1.0}).items()))


#: The fields of a per-round check (``loss_check``), each a mean over its seeds.
CHECK_FIELDS = ("best_val_loss", "final_val_loss", "diverged")


def loss_check(
    backend: Backend,
    cfg: TuningFreeConfig,
    reference: float,
    policy_file: str | None,
    progress: bool,
) -> dict[str, Any]:
    """Best and final validation losses (the env's validation subset) at base LRs
    ``reference · 2^k`` on model-selection seeds, and how many runs diverged: the policy's,
    or (``policy_file`` None) the expert's, per ``k`` (means over the seeds). Validation
    only: these checks are seen during training, so they never read the test split."""
    pairs = _check(cfg.check_ks, cfg.check_seeds)
    items = _fixed_items(cfg, reference, policy_file, pairs)
    episodes = run_items(backend, items, "loss check", progress)
    out: dict[str, Any] = {}
    for k in cfg.check_ks:
        rows = [e for (kk, _), e in zip(pairs, episodes, strict=True) if kk == k]
        out[str(k)] = {
            "best_val_loss": float(np.mean([e.best_val_loss for e in rows])),
            "final_val_loss": float(np.mean([e.val_losses[-1] for e in rows])),
            "diverged": sum(e.diverged for e in rows),
        }
    return out


def _expert_check(
    backend: Backend, cfg: TuningFreeConfig, reference: float, folder: Path, progress: bool
) -> dict[str, Any]:
    """The expert's ``loss_check``, run once per folder (``expert_check.json``). A folder
    whose checks read the test split (before they read validation losses only) keeps
    that file as ``expert_check_test_split.json`` and runs the check again."""
    path = folder / "expert_check.json"
    if path.exists():
        stored = json.loads(path.read_text())
        if all(set(CHECK_FIELDS) <= set(row) for row in stored.values()):
            return stored
        path.replace(folder / "expert_check_test_split.json")
    check = loss_check(backend, cfg, reference, None, progress)
    write_json(path, check)
    return check


def train_tuningfree(
    cfg: TuningFreeConfig,
    out: str | Path,
    *,
    seed: int = 0,
    backend: Backend | None = None,
    progress: bool = True,
    record: dict[str, Any] | None = None,
    ppo: PPOStage | None = None,
) -> dict[str, Any]:
    """Run (or resume) the recipe into ``out``; the metrics written to ``metrics.json``.

    Writes ``policy.pt`` (the last round's), ``rounds/<r>/``, ``metrics.json``,
    ``plots/action_error`` and ``plots/lr_curves`` (PNG + CSV) and TensorBoard logs
    (``tb/``); with a ``ppo`` stage, also ``ppo/`` (the PPO job's folder) and
    ``policy_ppo.pt``. A folder holding another configuration is refused.
    """
    backend = backend or LocalBackend(workers=0)
    folder = Path(out)
    if ppo is not None:
        check_stage(cfg, ppo)
    reference = cfg.reference()
    round_seeds = cfg.round_seeds(seed)
    settings = {
        "config": json.loads(json.dumps(dataclasses.asdict(cfg), default=list)),
        "seed": seed,
        "reference_lr": reference,
    }
    settings_file = folder / "settings.json"
    if settings_file.exists():  # a resume: the same run, perhaps to another number of rounds
        stored = json.loads(settings_file.read_text())
        old, new = _but_rounds(stored), _but_rounds(settings)
        if old != new:
            differ = "; ".join(
                f"{k}: stored {a!r}, given {b!r}" for k, a, b in _differences(old, new)
            )
            raise ValueError(
                f"{folder} holds a run of another configuration ({settings_file}: {differ}); "
                "give a new --out, or the same arguments (--rounds may differ) to resume"
            )
    kwargs = tuple(
        sorted((cfg.options | {"base_lr": reference, "base_lr_spread": cfg.spread}).items())
    )
    env = gym.make(cfg.env_id, **dict(kwargs))
    expert = PrivilegedSchedulePolicy(make_schedule(cfg.schedule), env.action_space, reference)
    # before anything is written: a bad mixture leaves no folder
    check_tasks(cfg.extra_tasks, env, cfg.env_id, cfg.options, cfg.spread)
    tasks = cfg.extra_tasks
    write_json(settings_file, settings)
    dagger = DAggerConfig(rounds=cfg.rounds, bc=cfg.bc)
    t0 = time.perf_counter()

    def items(
        policy_file: str | None, seeds: Sequence[int], tasks: Sequence[MixTask | None] | None = None
    ) -> list[RolloutItem]:
        tasks = tasks or [None] * len(seeds)
        return [
            RolloutItem(cfg.env_id, kwargs, policy_file, cfg.schedule, reference, s)
            if t is None
            else RolloutItem(
                t.env_id,
                task_kwargs(t, cfg.options, cfg.spread),
                policy_file,
                cfg.schedule,
                t.reference_lr,
                s,
            )
            for s, t in zip(seeds, tasks, strict=True)
        ]

    experts = [
        PrivilegedSchedulePolicy(make_schedule(cfg.schedule), env.action_space, t.reference_lr)
        for t in tasks
    ]

    validation_seeds = seed_ranges.take("model_selection", cfg.validation_episodes)
    validation = [
        relabel(e, expert)
        for e in run_items(backend, items(None, validation_seeds), "validation", progress)
    ]
    expert_check = _expert_check(backend, cfg, reference, folder, progress)

    writer = SummaryWriter(folder / "tb")
    log_hyperparameters(writer, dict(record or {}) | {"seed": seed, "reference_lr": reference})
    policy = make_policy(env.observation_space, env.action_space, cfg.policy, seed=seed)
    data: list[TrajectoryWithRew] = []
    records: list[dict[str, Any]] = []
    for r, seeds in enumerate(round_seeds):
        rdir = folder / "rounds" / str(r)
        if (rdir / "record.json").exists():  # finished before a resume
            data += _load_round(rdir)
            records.append(json.loads((rdir / "record.json").read_text()))
            continue
        if r > 0:  # the policy this round runs: the last finished round's
            policy = load_policy(folder / "rounds" / str(r - 1) / "policy.pt", device="cpu")
            policy.set_training_mode(True)
        acting = None if r == 0 else str(folder / "rounds" / str(r - 1) / "policy.pt")
        of_round = cfg.round_tasks(r)
        episodes = run_items(backend, items(acting, seeds, of_round), f"round {r}", progress)
        n_before = len(data)
        labellers = [expert if t is None else experts[tasks.index(t)] for t in of_round]
        rec = dagger_round(
            r,
            policy,
            episodes,
            data,
            labellers,
            dagger,
            rng=np.random.default_rng([seed, r]),
            validation=validation,
        )
        if cfg.extra_tasks:
            rec["tasks"] = per_task(episodes, of_round)
        save_policy(policy, rdir / "policy.pt", cfg.policy, env=env, gamma=cfg.bc.gamma)
        _save_round(rdir, data[n_before:])
        rec["check"] = loss_check(backend, cfg, reference, str(rdir / "policy.pt"), progress)
        rec["wall_seconds"] = time.perf_counter() - t0
        write_json(rdir / "record.json", rec)  # last: the round is done
        records.append(rec)
        _log_round(writer, rec, expert_check)
        print(_describe(rec, expert_check))
    final = folder / "rounds" / str(len(round_seeds) - 1) / "policy.pt"
    atomic_write_bytes(folder / "policy.pt", final.read_bytes())
    curves = lr_curves(backend, cfg, reference, str(folder / "policy.pt"), progress)
    expert_curve = expert_lr_curve(
        cfg.schedule,
        reference,
        env.unwrapped.trainee.total_steps,
        env.unwrapped.config.steps_per_action,
    )
    plot_run(folder, records, curves, reference, cfg.schedule, expert_curve)
    writer.close()
    metrics = {
        "settings": settings,
        "args": record or {},
        "rounds": records,
        "expert_check": expert_check,
        "lr_curves": curves,
        "expert_lr_curve": {"step": expert_curve[0], "lr": expert_curve[1]},
        "policy": str(folder / "policy.pt"),
        "wall_seconds_this_invocation": time.perf_counter() - t0,
        "wall_seconds_rounds": records[-1].get("wall_seconds") if records else None,
    }
    if ppo is not None and ppo.timesteps > 0:
        metrics["ppo"] = ppo_stage(cfg, folder, seed, reference, ppo, progress)
    metrics["wall_seconds_this_invocation"] = time.perf_counter() - t0
    write_json(folder / "metrics.json", metrics)
    return metrics


def _but_rounds(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings without the number of rounds: round r's seeds do not depend on it, so a run
    may be resumed to fewer rounds (ending at that round) or extended by more. Options are
    compared with the env id's defaults filled in (``dataset="mnist"`` given or not is the
    same run of LRSchedule-MLP-v0)."""
    config = {k: v for k, v in settings["config"].items() if k != "rounds"}
    defaults = {k: v for k, v in gym.spec(config["env_id"]).kwargs.items() if k != "trainee"}
    config["options"] = json.loads(json.dumps(defaults | config["options"], default=list))
    return settings | {"config": config}


def _differences(a: Any, b: Any, key: str = "") -> list[tuple[str, Any, Any]]:
    """The leaves where two JSON-like values differ, as (dotted key, a's, b's)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [
            d
            for k in sorted(a.keys() | b.keys(), key=str)
            for d in _differences(a.get(k), b.get(k), f"{key}.{k}" if key else str(k))
        ]
    return [] if a == b else [(key, a, b)]


def _log_round(writer: SummaryWriter, rec: dict[str, Any], expert: dict[str, Any]) -> None:
    r = rec["round"]
    writer.add_scalar("dagger/action_error_validation", rec["action_error_validation"], r)
    if rec["action_error_on_visited_before_fit"] is not None:
        writer.add_scalar(
            "dagger/action_error_visited", rec["action_error_on_visited_before_fit"], r
        )
    writer.add_scalar("dagger/transitions", rec["transitions"], r)
    for k, row in rec["check"].items():
        for name in ("best_val_loss", "final_val_loss"):
            writer.add_scalar(f"check/delta_{name}_k{k}", row[name] - expert[k][name], r)
    writer.flush()


def _describe(rec: dict[str, Any], expert: dict[str, Any]) -> str:
    deltas = ", ".join(
        f"k={k}: {row['best_val_loss'] - expert[k]['best_val_loss']:+.4f}"
        for k, row in rec["check"].items()
    )
    return (
        f"round {rec['round']}: {rec['transitions']} transitions, action error "
        f"{rec['action_error_validation']:.3f} (validation); best validation loss vs "
        f"expert {deltas}"
    )


def lr_curves(
    backend: Backend,
    cfg: TuningFreeConfig,
    reference: float,
    policy_file: str | None,
    progress: bool,
) -> dict[str, Any]:
    """The policy's LR at every action from base LRs ``reference · 2^k`` (one held-out seed;
    ``policy_file`` None: the expert's). Each action's point is at ``step``, the optimizer
    steps done when its block ends: ``lr`` was applied to the steps since the previous point."""
    seed = seed_ranges.take("held_out", 1)[0]
    items = _fixed_items(cfg, reference, policy_file, [(k, seed) for k in cfg.curve_ks])
    episodes = run_items(backend, items, "LR curves", progress)
    return {
        str(k): {
            "step": e.steps.tolist(),
            "lr": e.lrs.tolist(),
            "seed": seed,
            "final_val_loss": float(e.val_losses[-1]),
        }
        for k, e in zip(cfg.curve_ks, episodes, strict=True)
    }


def expert_lr_curve(
    schedule: str, reference: float, total_steps: int, steps_per_action: int
) -> tuple[list[int], list[float]]:
    """The privileged expert's LR as the env applies it, on ``lr_curves``' axis: one point
    per action at the last optimizer step of its block (``info["step"]``), the LR
    ``s(start / total) · reference`` it chose after ``start`` steps and held for the
    ``steps_per_action`` steps (fewer in a last, shorter block) that end there."""
    s = make_schedule(schedule)
    starts = range(0, total_steps, steps_per_action)
    ends = [min(t + steps_per_action, total_steps) for t in starts]
    return ends, [s(t / total_steps) * reference for t in starts]


def plot_run(
    folder: Path,
    records: Sequence[dict[str, Any]],
    curves: dict[str, Any],
    reference: float,
    schedule: str,
    expert: tuple[Sequence[int], Sequence[float]],
) -> None:
    """``plots/action_error`` (per round) and ``plots/lr_curves`` (PNG + CSV each): the
    policy's ``curves`` (``lr_curves``) beside the ``expert``'s (``expert_lr_curve``), every
    point the LR of the action block that ends at that optimizer step."""
    rounds = [r["round"] for r in records]
    series = {
        "validation (expert's states)": (rounds, [r["action_error_validation"] for r in records])
    }
    visited = [(r["round"], r["action_error_on_visited_before_fit"]) for r in records[1:]]
    if visited:
        series["the round's own states, before the fit"] = tuple(
            map(list, zip(*visited, strict=True))
        )
    save_panels(
        folder / "plots" / "action_error",
        [Panel("DAgger", "round", "mean |action - expert action|", series)],
    )
    lr_series = {
        f"k={k} (base {reference * 2.0 ** int(k):.2g})": (c["step"], c["lr"])
        for k, c in curves.items()
    }
    lr_series[f"expert: {schedule} at the reference {reference:.2g}"] = expert
    save_panels(
        folder / "plots" / "lr_curves",
        [
            Panel(
                "the policy from several base LRs",
                "optimizer step (end of the action)",
                "LR",
                lr_series,
                logy=True,
            )
        ],
    )
