"""The evaluation harness: methods x envs x seeds, each run through the same env machinery.

A *method* chooses the learning rate of a training run: a saved policy file (BC, PPO),
an expert schedule whose base LR is tuned on the tuning seeds, or another optimizer
(Schedule-Free AdamW, Prodigy) through the trainees' ``optimizer`` option. Every run
is one episode of ``LRScheduleEnv`` (:func:`envs.rollout.run_episode`), so every
method gets the same metrics; the test split is read once, after the episode has
ended (``Trainee.test_metrics``), and never reaches an observation or a reward.

A grid runs in two phases: the tuning runs (and the final runs of methods that need
no tuning), then the final runs of the tuned methods at the base LR each chose. Each
finished run is written to its own file in the run folder at once, so an interrupted
grid resumes where it stopped. Runs execute in local processes or as Ray tasks
(:class:`LocalBackend`, :class:`RayBackend`); a run is a pure function of its
:class:`RunSpec`, so both give the same results on CPU.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

from agents import seeds as seed_ranges
from agents.backends import Backend
from agents.policy import load_policy, read_policy_file
from envs.rollout import run_episode
from experts.policy import SchedulePolicy
from experts.schedules import SCHEDULES, make_schedule
from trainees.files import write_json
from trainees.optimizers import OPTIMIZERS

Kind = Literal["schedule", "policy"]


@dataclass(frozen=True)
class Method:
    """How a training run's learning rate is chosen.

    Attributes:
        name: the method's label in tables and file names.
        kind: ``schedule`` (an expert schedule) or ``policy`` (a saved policy file).
        schedule: the expert's name (``experts.schedules.SCHEDULES``), for ``schedule``.
        params: the schedule's parameters.
        policy: the policy file, for ``policy``.
        optimizer: the trainees' optimizer (adamw | schedulefree | prodigy).
        tune: tune the base LR on the tuning seeds (False: ``base_lr`` or the env's).
        base_lr: a fixed base LR (Prodigy's 1.0); None keeps the env's.
    """

    name: str
    kind: Kind = "schedule"
    schedule: str | None = None
    params: dict[str, float] = field(default_factory=dict)
    policy: str | None = None
    optimizer: str = "adamw"
    tune: bool = True
    base_lr: float | None = None

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or "__" in self.name:
            raise ValueError(f"method name {self.name!r} is invalid; expected a plain label")
        if self.kind == "schedule":
            if self.schedule not in SCHEDULES:
                raise ValueError(
                    f"method {self.name!r}: schedule={self.schedule!r} is invalid; valid: "
                    + ", ".join(SCHEDULES)
                )
            make_schedule(self.schedule, **self.params)  # bad parameters fail here
        elif self.kind == "policy":
            if not self.policy:
                raise ValueError(f"method {self.name!r} of kind 'policy' needs a policy file")
        else:
            raise ValueError(f"method kind {self.kind!r} is invalid; valid: schedule, policy")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"method {self.name!r}: optimizer={self.optimizer!r} is invalid; valid: "
                + ", ".join(OPTIMIZERS)
            )
        if self.tune and self.base_lr is not None:
            raise ValueError(f"method {self.name!r}: a tuned method takes no fixed base_lr")

    @property
    def digest(self) -> str:
        """8 hex digits of the method's definition (and its policy file's bytes): a run
        folder reuses a run only for the very same method."""
        h = hashlib.sha1(json.dumps(dataclasses.asdict(self), sort_keys=True).encode())
        if self.policy is not None:
            stat = Path(self.policy).stat()
            h.update(_file_sha1(self.policy, stat.st_mtime_ns, stat.st_size).encode())
        return h.hexdigest()[:8]


@functools.lru_cache(maxsize=64)
def _file_sha1(path: str, mtime_ns: int, size: int) -> str:
    """SHA-1 of a file's bytes (cached while its modification time and size stay)."""
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


# The hand-designed schedules and the optimizers users pick instead, by name.
MethodName = Literal[
    "constant", "cosine", "cosine_untuned", "cosine_warmup", "linear_warmup", "polynomial",
    "wsd", "schedulefree", "prodigy_cosine",
]  # fmt: skip
METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("constant", schedule="constant"),
        Method("cosine", schedule="cosine"),
        # cosine at the env's own base LR: what the BC policies imitate
        Method("cosine_untuned", schedule="cosine", tune=False),
        Method("cosine_warmup", schedule="cosine", params={"warmup": 0.05}),
        Method("linear_warmup", schedule="linear_warmup"),
        Method("polynomial", schedule="polynomial"),
        Method("wsd", schedule="wsd"),
        # Schedule-Free is run at a constant LR after a 5% linear warm-up, as its authors do
        Method(
            "schedulefree",
            schedule="wsd",
            params={"warmup": 0.05, "decay": 0.0},
            optimizer="schedulefree",
        ),
        # Prodigy estimates the step size itself: lr=1.0 is its intended use, with cosine
        Method("prodigy_cosine", schedule="cosine", optimizer="prodigy", tune=False, base_lr=1.0),
    )
}


def _policy_spec(spec: str) -> tuple[str, str]:
    """The name and path of ``"name=path"`` or of a path (named after the file)."""
    name, sep, path = spec.partition("=")
    return (name, path) if sep else (Path(spec).stem, spec)


def policy_name(spec: str) -> str:
    """The method name a policy ``"name=path"`` or path gets (the file is not read)."""
    return _policy_spec(spec)[0]


def policy_method(spec: str) -> Method:
    """A saved policy as a method: ``"name=path"`` or a path (named after the file).

    It runs at the base LR its file records (a policy sets multipliers of the base LR it
    was trained with), or at the env's when the file records none.
    """
    name, path = _policy_spec(spec)
    if not Path(path).is_file():
        raise ValueError(f"policy file {path!r} does not exist")
    base_lr = read_policy_file(path).env.get("trainee_options", {}).get("base_lr")
    return Method(name, kind="policy", policy=path, tune=False, base_lr=base_lr)


# -- one run ------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunSpec:
    """One training run: a method on an env at a base LR and seed.

    Attributes:
        phase: ``tune`` (a tuning seed) or ``final`` (a final-evaluation seed).
        env_id: the registered env id.
        options: ``gym.make`` options on top of the id's (dataset, total_steps, ...).
        method: the method.
        base_lr: the base LR of the run (None: the env's).
        seed: the env seed.
    """

    phase: Literal["tune", "final"]
    env_id: str
    options: tuple[tuple[str, Any], ...]
    method: Method
    base_lr: float | None
    seed: int

    @property
    def key(self) -> str:
        """A unique, file-name-safe identifier of the run."""
        lr = "env" if self.base_lr is None else f"{self.base_lr:.6g}"
        m = f"{self.method.name}-{self.method.digest}"
        return f"{self.phase}__{self.env_id}__{m}__lr{lr}__s{self.seed}"

    def env_kwargs(self) -> dict[str, Any]:
        """The ``gym.make`` options of the run's env."""
        kwargs = dict(self.options)
        if self.base_lr is not None:
            kwargs["base_lr"] = self.base_lr
        if self.method.optimizer != "adamw":
            kwargs["optimizer"] = self.method.optimizer
        return kwargs


_ENVS: dict[tuple, gym.Env] = {}  # per worker process: data is loaded once per env


def _env(spec: RunSpec) -> gym.Env:
    kwargs = spec.env_kwargs()
    key = (spec.env_id, tuple(sorted((k, repr(v)) for k, v in kwargs.items())))
    if key not in _ENVS:
        if len(_ENVS) >= 4:  # a few datasets at most stay in memory
            _ENVS.pop(next(iter(_ENVS))).close()
        _ENVS[key] = gym.make(spec.env_id, **kwargs)
    return _ENVS[key]


def _policy(method: Method, env: gym.Env) -> tuple[Any, list[str]]:
    """The method's policy for ``env``, and how the env differs from the policy's own."""
    if method.kind == "schedule":
        schedule = make_schedule(method.schedule, **method.params)
        return SchedulePolicy(schedule, env.action_space), []
    with warnings.catch_warnings(record=True) as caught:  # a transfer is recorded, not warned
        warnings.simplefilter("always")
        policy = load_policy(method.policy, env.unwrapped, allow_mismatch=True, device="cpu")
    return policy, [str(w.message).split("transferred to another env: ")[-1] for w in caught]


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def execute(spec: RunSpec, threads: int = 1) -> dict[str, Any]:
    """Run ``spec`` to the end of its episode; its metrics and curves as plain values.

    The test split is evaluated once, after the episode has ended. Keys: the spec's
    fields, ``test_loss`` (and ``test_accuracy`` or ``test_bits_per_char``),
    ``test_split``, ``test_samples``, ``best_val_loss``, ``final_val_loss``, ``loss0``,
    ``diverged``, ``wall_seconds``, ``train_seconds``, ``steps``, ``policy_env_mismatches``
    and ``curve`` (optimizer step, LR and validation loss after each action). A
    non-finite value is None.

    Args:
        spec: the run.
        threads: torch intra-op threads (the same on every backend, for equal results).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        env = _env(spec)
        policy, mismatches = _policy(spec.method, env)
        episode = run_episode(env, policy, spec.seed)
        test = env.unwrapped.trainee.test_metrics()  # the only read of the test split
    finally:
        torch.set_num_threads(previous)
    final = episode.final
    out: dict[str, Any] = {
        "key": spec.key,
        "phase": spec.phase,
        "env_id": spec.env_id,
        "method": spec.method.name,
        "optimizer": spec.method.optimizer,
        "base_lr": env.unwrapped.trainee.base_lr,
        "seed": spec.seed,
    }
    for name, value in test.items():
        out[name] = _finite(value) if isinstance(value, float) else value
    out |= {
        "best_val_loss": _finite(episode.best_val_loss),
        "final_val_loss": _finite(float(episode.val_losses[-1])),
        "loss0": float(env.unwrapped.loss0),
        "diverged": episode.diverged,
        "wall_seconds": episode.seconds,
        "train_seconds": float(final["total_train_time"]),
        "steps": int(final["step"]),
        "policy_env_mismatches": mismatches,
        "curve": {
            "step": episode.steps.tolist(),
            "lr": episode.lrs.tolist(),
            "val_loss": [_finite(v) for v in episode.val_losses],
        },
    }
    return out


# -- the grid -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Grid:
    """Methods x envs x seeds.

    Attributes:
        envs: registered env ids.
        methods: the methods.
        options: ``gym.make`` options for every env (dataset, total_steps, data_dir...).
        final_seeds: final-evaluation seeds (``agents.seeds.FINAL_EVALUATION``).
        tuning_seeds: tuning seeds (``agents.seeds.BASELINE_TUNING``).
        lr_factors: the tuning grid, as multiples of the env's base LR.
        reference: the method that paired differences are taken against (one of ``methods``).
    """

    envs: tuple[str, ...]
    methods: tuple[Method, ...]
    options: dict[str, Any] = field(default_factory=dict)
    final_seeds: tuple[int, ...] = tuple(seed_ranges.take("final_evaluation", 10))
    tuning_seeds: tuple[int, ...] = tuple(seed_ranges.take("baseline_tuning", 3))
    lr_factors: tuple[float, ...] = tuple(2.0**k for k in range(-3, 4))
    reference: str = "cosine"

    def __post_init__(self) -> None:
        names = [m.name for m in self.methods]
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"method names must be unique and non-empty: {names}")
        if self.reference not in names:
            raise ValueError(
                f"reference={self.reference!r} is not a method of the grid; valid: "
                + ", ".join(names)
            )
        if not self.envs:
            raise ValueError("no env to evaluate on")
        check_seeds(self.final_seeds, self.tuning_seeds)
        if any(not (f > 0 and math.isfinite(f)) for f in self.lr_factors) or not self.lr_factors:
            raise ValueError(f"lr_factors={self.lr_factors} must be finite values > 0")

    def to_json(self) -> dict[str, Any]:
        """Plain values, for ``grid.json`` (a resumed run must find the same grid)."""
        return json.loads(json.dumps(dataclasses.asdict(self), default=list))


def check_seeds(final: Iterable[int], tuning: Iterable[int]) -> None:
    """Final seeds must come from the final-evaluation range, tuning seeds from the tuning
    range, so that they never overlap with each other or with any training seed.

    Raises:
        ValueError: naming the seeds outside their range.
    """
    for seeds, name in ((final, "final_evaluation"), (tuning, "baseline_tuning")):
        r = seed_ranges.RANGES[name]
        bad = sorted(s for s in seeds if s not in r)
        if bad:
            raise ValueError(f"seeds {bad} are outside the {name} range {r.start}..{r.stop - 1}")


def tuning_specs(grid: Grid, base_lrs: dict[str, float]) -> list[RunSpec]:
    """Every tuned method at every grid LR on every tuning seed."""
    opts = tuple(sorted(grid.options.items()))
    return [
        RunSpec("tune", env, opts, m, base_lrs[env] * f, s)
        for env in grid.envs
        for m in grid.methods
        if m.tune
        for f in grid.lr_factors
        for s in grid.tuning_seeds
    ]


def final_specs(
    grid: Grid, chosen: dict[tuple[str, str], float | None], *, tuned: bool
) -> list[RunSpec]:
    """The final runs of the tuned (``tuned``) or the untuned methods."""
    opts = tuple(sorted(grid.options.items()))
    return [
        RunSpec("final", env, opts, m, chosen[env, m.name] if m.tune else m.base_lr, s)
        for env in grid.envs
        for m in grid.methods
        if m.tune == tuned
        for s in grid.final_seeds
    ]


def choose_base_lrs(grid: Grid, runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per env and tuned method: the base LR with the lowest mean final validation loss
    over the tuning seeds (a run that diverged counts as infinitely bad).

    Returns ``{env: {method: {"base_lr", "at_edge", "table": [{base_lr, mean_final_val_loss,
    diverged}]}}}``; ``at_edge`` warns that the best LR is the grid's smallest or largest.
    """
    out: dict[str, Any] = {}
    for env in grid.envs:
        out[env] = {}
        for m in (m for m in grid.methods if m.tune):
            rows = sorted(
                (
                    r
                    for r in runs
                    if r["env_id"] == env and r["method"] == m.name and r["phase"] == "tune"
                ),
                key=lambda r: r["base_lr"],
            )
            table = []
            for lr in sorted({r["base_lr"] for r in rows}):
                at = [r for r in rows if r["base_lr"] == lr]
                vals = [
                    math.inf
                    if r["diverged"] or r["final_val_loss"] is None
                    else r["final_val_loss"]
                    for r in at
                ]
                table.append(
                    {
                        "base_lr": lr,
                        "mean_final_val_loss": float(np.mean(vals)),
                        "diverged": sum(r["diverged"] for r in at),
                        "n": len(at),
                    }
                )
            best = min(range(len(table)), key=lambda i: table[i]["mean_final_val_loss"])
            out[env][m.name] = {
                "base_lr": table[best]["base_lr"],
                "at_edge": best in (0, len(table) - 1),
                "table": table,
            }
    return out


# -- the run folder -----------------------------------------------------------------------
class RunStore:
    """Finished runs, one JSON file each under ``folder/runs``; written as they finish."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder) / "runs"
        self.folder.mkdir(parents=True, exist_ok=True)

    def done(self) -> dict[str, dict[str, Any]]:
        """The finished runs by key."""
        return {p.stem: json.loads(p.read_text()) for p in sorted(self.folder.glob("*.json"))}

    def run(
        self,
        specs: Sequence[RunSpec],
        backend: Backend,
        *,
        desc: str = "runs",
        progress: bool = True,
        on_result: Callable[[dict[str, Any]], None] | None = None,
    ) -> list[dict[str, Any]]:
        """The results of ``specs``: those already in the folder, the others run now."""
        done = self.done()
        todo = [s for s in specs if s.key not in done]
        bar = tqdm(
            total=len(specs), initial=len(specs) - len(todo), desc=desc, disable=not progress
        )
        for result in backend.map_unordered(execute, todo):
            write_json(self.folder / f"{result['key']}.json", result)
            done[result["key"]] = result
            if on_result is not None:
                on_result(result)
            bar.update()
        bar.close()
        return [done[s.key] for s in specs]


def new_run_folder(root: str | Path, env: str, exp: str) -> Path:
    """A new, empty ``root/{env}__{exp}__{unix time}`` folder (cleanrl's layout); another
    one made in the same second gets ``-1``, ``-2``... after its time."""
    name, i = f"{env}__{exp}__{int(time.time())}", 0
    while True:
        path = Path(root) / (f"{name}-{i}" if i else name)
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            i += 1


def _registered(stored: dict[str, Any] | None, grid: Grid, has_runs: bool) -> dict[str, Any]:
    """The pre-registered methods, name -> digest: the methods of the invocation that
    first ran anything in the folder. A folder written before this record existed gives
    its stored methods' names, with their digests unknown (None)."""
    if stored is None or not has_runs:
        return {m.name: m.digest for m in grid.methods}
    if "preregistered" in stored:
        return stored["preregistered"]
    return {m["name"]: None for m in stored.get("methods", [])}


def open_folder(folder: str | Path, grid: Grid) -> Path:
    """Create ``folder`` for ``grid``, or reopen it when it holds the same grid.

    The methods may differ (a run's file name identifies its method's definition, so
    adding a method to a finished grid runs only the new method's runs); the envs,
    options, seeds, LR grid and reference may not. ``grid.json`` also records the
    pre-registered methods (:func:`added_after_results`).

    Raises:
        ValueError: the folder holds another grid (naming the differing fields).
    """
    folder = Path(folder)
    path = folder / "grid.json"
    current = grid.to_json()
    stored = json.loads(path.read_text()) if path.exists() else None
    if stored is not None:
        keys = (current.keys() | stored.keys()) - {"methods", "preregistered"}
        diff = sorted(k for k in keys if current.get(k) != stored.get(k))
        if diff:
            raise ValueError(
                f"{folder} holds another grid (differs in {', '.join(diff)}): resume it with "
                "the same arguments, or pass another --out"
            )
    has_runs = any((folder / "runs").glob("*.json"))
    write_json(path, current | {"preregistered": _registered(stored, grid, has_runs)})
    return folder


def added_after_results(folder: str | Path, grid: Grid) -> list[str]:
    """The methods of ``grid`` that were not pre-registered in ``folder`` (opened with
    :func:`open_folder`): added, or redefined, after the folder held results."""
    registered = json.loads((Path(folder) / "grid.json").read_text())["preregistered"]
    return [
        m.name
        for m in grid.methods
        if m.name not in registered or registered[m.name] not in (None, m.digest)
    ]


def env_base_lrs(grid: Grid) -> dict[str, float]:
    """The default base LR of each env of the grid (with the grid's options)."""
    out = {}
    for env_id in grid.envs:
        env = gym.make(env_id, **grid.options)
        out[env_id] = float(env.unwrapped.trainee.base_lr)
        env.close()
    return out


def run_grid(
    grid: Grid,
    folder: str | Path,
    backend: Backend,
    *,
    progress: bool = True,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run the whole grid (resuming from ``folder``): tuning, then the final runs.

    Returns ``{"tuning": choose_base_lrs(...), "final": [final runs], "tune": [tuning
    runs], "base_lrs": {env: default base LR}, "preregistered": [method names],
    "added_after_results": [method names]}``.
    """
    store = RunStore(open_folder(folder, grid))
    added = added_after_results(folder, grid)
    base_lrs = env_base_lrs(grid)
    untuned = final_specs(grid, {}, tuned=False)
    first = store.run(
        tuning_specs(grid, base_lrs) + untuned,
        backend,
        desc="tuning + untuned methods",
        progress=progress,
        on_result=on_result,
    )
    tune_runs = first[: len(first) - len(untuned)]
    tuning = choose_base_lrs(grid, tune_runs)
    chosen = {(env, m): v["base_lr"] for env, ms in tuning.items() for m, v in ms.items()}
    tuned = store.run(
        final_specs(grid, chosen, tuned=True),
        backend,
        desc="tuned methods",
        progress=progress,
        on_result=on_result,
    )
    return {
        "tuning": tuning,
        "final": first[len(tune_runs) :] + tuned,
        "tune": tune_runs,
        "base_lrs": base_lrs,
        "preregistered": [m.name for m in grid.methods if m.name not in added],
        "added_after_results": added,
    }
