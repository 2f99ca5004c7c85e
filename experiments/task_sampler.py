"""A sampled distribution of cheap training tasks, each with its tuned reference LR.

Learned optimizers that transferred were trained on many cheap tasks rather than a few
(``../shared/notes/generalisation.md``). :func:`sample_tasks` draws, from a seed and a
sampler version (:data:`SAMPLER_VERSIONS`; a version's draws never change), tasks of the
families of :data:`FAMILIES_BY_VERSION`:

- ``mlp``: MLPs of varied width, depth, activation and normalisation, on MNIST, the
  bundled digits, or MNIST derived (pixels permuted; down-sampled to 14x14);
- ``cnn`` (v2): small plain CNNs (``trainees.models.cnn``) of varied channels, depth,
  activation and BatchNorm, on the same image datasets;
- ``gpt``: character-level GPTs of varied size on tiny Shakespeare (v2: or on the Python
  standard library's sources as bytes, ``trainees.language.stdlib_lm_corpus``);
- ``quadratic``: the synthetic linear regression of varied dimension and noise;

with their batch sizes, budgets (a few hundred to a few thousand optimizer steps) and
AdamW settings (weight decay, beta2). Every task runs at one cadence (:data:`CADENCE`),
no task is a held-out workload or draws a held-out architecture
(``evaluation.suite.check_held_out``), and every task is cheap: a run's estimated
single-threaded seconds (``experiments.task_cost.estimated_seconds``) are at most
``MAX_RUN_SECONDS``. A refused draw is drawn again, so the sequence stays a
function of the seed.

:func:`tune_tasks` gives each task its reference LR, tuned cosine's on the tuning seeds
(``experiments.suite_job.tune_workload``: a grid widened until the best LR is inside,
resumable), and :func:`reference_table` writes the versioned table that keeps them with
the command that made them; :func:`mixture` turns a table into a mixture file for the
tuning-free recipe (``experiments.task_mixture``), at either observation version.
"""

from __future__ import annotations

import json
import math
import platform
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from common.files import write_json
from envs.observation import OBSERVATIONS
from evaluation.backends import Backend
from evaluation.suite import TUNING_SEEDS, TrainingTask, check_held_out
from experiments.suite_job import tune_workload
from experiments.task_cost import MAX_RUN_SECONDS, estimated_seconds
from trainees.data.stdlib import STDLIB_NAME
from trainees.language import stdlib_lm_sha256

SAMPLER_VERSIONS: tuple[int, ...] = (1, 2)
SAMPLER_VERSION = 2  # the latest: what a new draw takes unless told otherwise
# one cadence across the distribution, the suite's and the recipe's main env's
CADENCE: Mapping[str, int] = MappingProxyType({"steps_per_action": 32, "eval_every": 64})
# each version's families and their shares (v1's are kept as they were drawn)
FAMILIES_BY_VERSION: Mapping[int, Mapping[str, float]] = MappingProxyType(
    {
        1: MappingProxyType({"mlp": 0.6, "gpt": 0.2, "quadratic": 0.2}),
        2: MappingProxyType({"mlp": 0.35, "cnn": 0.25, "gpt": 0.25, "quadratic": 0.15}),
    }
)
FAMILIES: Mapping[str, float] = FAMILIES_BY_VERSION[SAMPLER_VERSION]
ENV_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "mlp": "LRSchedule-MLP",
        "cnn": "LRSchedule-CNN",
        "gpt": "LRSchedule-GPT",
        "quadratic": "LRSchedule-Quadratic",
    }
)
# the first guess of each family's tuning grid (the trainee's default base LR)
GUESSES: Mapping[str, float] = MappingProxyType(
    {"mlp": 4e-3, "cnn": 4e-3, "gpt": 2e-3, "quadratic": 0.05}
)
MAX_REDRAWS = 100


@dataclass(frozen=True)
class SampledTask:
    """One drawn task: a trainee family and its env options (budget and cadence included).

    Attributes:
        name: ``<family>-<index>`` within its draw.
        family: ``mlp``, ``cnn``, ``gpt`` or ``quadratic``.
        options: the ``gym.make`` options (trainee options, ``total_steps`` and the cadence).
    """

    name: str
    family: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.family not in ENV_NAMES:
            raise ValueError(f"family={self.family!r} is invalid; valid: {', '.join(ENV_NAMES)}")
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    @property
    def env_id(self) -> str:
        """The registered id of the task's env (observation v0: what tuning runs)."""
        return self.env_id_for("v0")

    def env_id_for(self, observation: str) -> str:
        """The registered id of the task's env at ``observation`` (``v0`` or ``v1``)."""
        if observation not in OBSERVATIONS:
            raise ValueError(
                f"observation={observation!r} is invalid; valid: {', '.join(OBSERVATIONS)}"
            )
        return f"{ENV_NAMES[self.family]}-{observation}"

    def training_task(self) -> TrainingTask:
        """The task as ``evaluation.suite.check_held_out`` sees it."""
        return TrainingTask(self.env_id, self.options, f"sampled task {self.name}")


def _log_uniform_steps(rng: np.random.Generator, low: int, high: int, unit: int = 64) -> int:
    """A budget drawn log-uniformly from ``[low, high]``, rounded to a multiple of ``unit``."""
    value = math.exp(rng.uniform(math.log(low), math.log(high)))
    return int(max(low, min(high, unit * round(value / unit))))


def _choice(rng: np.random.Generator, values: Sequence[Any], p: Sequence[float] | None = None):
    return values[int(rng.choice(len(values), p=p))]


def _draw_mlp(rng: np.random.Generator) -> dict[str, Any]:
    hidden = 16 * round(2 ** rng.uniform(5, 9) / 16)  # 32 ... 512
    return {
        "dataset": _choice(
            rng, ["mnist", "digits", "mnist_permuted", "mnist_14"], [0.35, 0.2, 0.25, 0.2]
        ),
        "hidden": int(hidden),
        "depth": int(_choice(rng, [1, 2, 3], [0.5, 0.3, 0.2])),
        "activation": _choice(rng, ["relu", "gelu", "tanh"]),
        "norm": _choice(rng, ["none", "layer"], [0.7, 0.3]),
        "batch_size": int(_choice(rng, [16, 32, 64, 128, 256])),
        "total_steps": _log_uniform_steps(rng, 256, 3072),
        "weight_decay": float(_choice(rng, [0.0, 1e-4, 1e-2, 0.1])),
        "betas": (0.9, float(_choice(rng, [0.95, 0.99, 0.999]))),
    }


def _draw_cnn(rng: np.random.Generator) -> dict[str, Any]:
    return {
        "dataset": _choice(
            rng, ["mnist", "digits", "mnist_permuted", "mnist_14"], [0.25, 0.3, 0.15, 0.3]
        ),
        "channels": int(_choice(rng, [4, 8, 16, 32])),
        "depth": int(_choice(rng, [1, 2, 3], [0.3, 0.5, 0.2])),
        "activation": _choice(rng, ["relu", "gelu", "tanh"]),
        "norm": _choice(rng, ["none", "batch"], [0.6, 0.4]),
        "batch_size": int(_choice(rng, [16, 32, 64, 128])),
        "total_steps": _log_uniform_steps(rng, 256, 1536),
        "weight_decay": float(_choice(rng, [0.0, 1e-4, 1e-2, 0.1])),
        "betas": (0.9, float(_choice(rng, [0.95, 0.99, 0.999]))),
    }


def _draw_gpt_v2(rng: np.random.Generator) -> dict[str, Any]:
    dataset = _choice(rng, ["shakespeare_char", "python_stdlib"])
    return _draw_gpt(rng) | {"dataset": dataset}


def _draw_gpt(rng: np.random.Generator) -> dict[str, Any]:
    n_embd = int(_choice(rng, [32, 48, 64, 96]))
    heads = [h for h in (1, 2, 3, 4) if n_embd % h == 0 and n_embd // h >= 16]
    return {
        "dataset": "shakespeare_char",
        "preset": "tiny",
        "n_layer": int(_choice(rng, [1, 2, 3])),
        "n_embd": n_embd,
        "n_head": int(_choice(rng, heads)),
        "block_size": int(_choice(rng, [32, 64])),
        "batch_size": int(_choice(rng, [8, 12, 16, 32])),
        "total_steps": _log_uniform_steps(rng, 256, 1536),
        "weight_decay": float(_choice(rng, [0.0, 0.01, 0.1])),
        "betas": (0.9, float(_choice(rng, [0.95, 0.99]))),
    }


def _draw_quadratic(rng: np.random.Generator) -> dict[str, Any]:
    return {
        "dim": int(_choice(rng, [4, 8, 16, 32, 64])),
        "noise": float(_choice(rng, [0.01, 0.1, 0.5])),
        "problem_seed": int(rng.integers(0, 1_000_000)),
        "batch_size": int(_choice(rng, [8, 16, 32, 64])),
        "total_steps": _log_uniform_steps(rng, 256, 3072),
        "weight_decay": float(_choice(rng, [0.0, 1e-4, 1e-2])),
        "window": 512,  # the main env's window: one policy acts in every task
    }


_DRAWS = {
    1: {"mlp": _draw_mlp, "gpt": _draw_gpt, "quadratic": _draw_quadratic},
    2: {"mlp": _draw_mlp, "cnn": _draw_cnn, "gpt": _draw_gpt_v2, "quadratic": _draw_quadratic},
}


def check_version(version: int) -> None:
    """Refuse a sampler version that does not exist, naming those that do."""
    if version not in SAMPLER_VERSIONS:
        valid = ", ".join(map(str, SAMPLER_VERSIONS))
        raise ValueError(f"sampler version={version!r} is invalid; valid: {valid}")


def check_table_name(table: str | Path, version: int) -> None:
    """Refuse a table file whose name says another sampler version (``sampler_v1_...``)
    than ``version``: the draw would be written under the other version's name."""
    named = re.search(r"sampler_v(\d+)_", Path(table).name)
    if named and int(named.group(1)) != version:
        raise ValueError(
            f"table={str(table)!r} names sampler v{named.group(1)}, but version={version}: "
            f"pass --version {named.group(1)}, or name the table for v{version}"
        )


def sample_tasks(seed: int, n: int, version: int = SAMPLER_VERSION) -> list[SampledTask]:
    """``n`` tasks drawn from ``seed`` by sampler ``version`` (the same seed, ``n`` and
    version: the same tasks; the first ``m`` of ``n`` are the tasks drawn for ``m``). Each
    task's family is drawn with the version's weights (:data:`FAMILIES_BY_VERSION`), then
    its options until the task is neither held out nor dearer than
    ``MAX_RUN_SECONDS`` (``experiments.task_cost``).

    Raises:
        ValueError: ``n`` < 1, ``seed`` < 0 or an unknown version; or (a defect of the
            distribution) a task still held out after :data:`MAX_REDRAWS` draws.
    """
    if n < 1 or seed < 0:
        raise ValueError(f"n={n!r} and seed={seed!r} are invalid; expected n >= 1, seed >= 0")
    check_version(version)
    rng = np.random.default_rng([version, seed])
    shares, draws = FAMILIES_BY_VERSION[version], _DRAWS[version]
    families = list(shares)
    weights = np.array([shares[f] for f in families])
    out: list[SampledTask] = []
    for i in range(n):
        family = families[int(rng.choice(len(families), p=weights / weights.sum()))]
        for attempt in range(MAX_REDRAWS):  # the family stays: its share is FAMILIES'
            options = draws[family](rng) | dict(CADENCE)
            task = SampledTask(f"{family}-{i:03d}", family, options)
            try:
                check_held_out([task.training_task()])
                if estimated_seconds(family, options) > MAX_RUN_SECONDS:
                    raise ValueError("too dear")
            except ValueError:
                if attempt == MAX_REDRAWS - 1:
                    raise
                continue
            out.append(task)
            break
    return out


# -- reference LRs --------------------------------------------------------------------------
def tune_tasks(
    tasks: Sequence[SampledTask],
    out: str | Path,
    backend: Backend,
    *,
    ks: Sequence[int] = (-2, -1, 0, 1, 2),
    max_widen: int = 3,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Each task's reference LR: tuned cosine's on ``evaluation.suite.TUNING_SEEDS``, from
    its family's first guess (:data:`GUESSES`) on a grid of ``guess · 2^k`` widened past
    an edge until the best LR is inside (``experiments.suite_job.tune_workload``).

    Runs go to ``out/<task>/runs``; an interrupted call resumes where it stopped.
    """
    rows = []
    for task in tasks:
        found = tune_workload(
            task,
            out,
            backend,
            guess=GUESSES[task.family],
            ks=ks,
            max_widen=max_widen,
            progress=progress,
        )
        rows.append(
            {
                "name": task.name,
                "family": task.family,
                "env_id": task.env_id,
                "options": jsonable_options(task.options),
                "reference_lr": found["lr"],
                "at_edge": found["at_edge"],
                "widened": found["widened"],
                "grid": found["grid"],
                "table": found["table"],
                "median_run_seconds": found["median_run_seconds"],
            }
        )
    return rows


def jsonable_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Options as JSON keeps them (tuples as lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}


def reference_table(
    seed: int,
    n: int,
    rows: Sequence[dict[str, Any]],
    *,
    command: str,
    commit: str,
    version: int = SAMPLER_VERSION,
) -> dict[str, Any]:
    """The versioned table of a draw's reference LRs, with the command that made it.

    Raises:
        ValueError: ``rows`` are not the tasks :func:`sample_tasks` draws for ``seed``, ``n``
            and ``version`` (another draw, another sampler version, or rows missing).
    """
    drawn = [(t.name, jsonable_options(t.options)) for t in sample_tasks(seed, n, version)]
    given = [(r["name"], jsonable_options(r["options"])) for r in rows]
    if drawn != given:
        where = next(
            (i for i, (a, b) in enumerate(zip(drawn, given, strict=False)) if a != b), None
        )
        what = (
            f"{len(given)} rows for {n} tasks"
            if where is None
            else f"row {where} is {given[where]}, the draw's task is {drawn[where]}"
        )
        raise ValueError(
            f"the rows are not sampler v{version}'s draw of seed {seed}, n {n}: {what}"
        )
    table = {
        "sampler_version": version,
        "seed": seed,
        "n": n,
        "cadence": dict(CADENCE),
        "tuning_seeds": list(TUNING_SEEDS),
        "command": command,
        "commit": commit,
        "tasks": list(rows),
    }
    if _reads_stdlib(rows):  # the text depends on the interpreter: keep which one it was
        table["texts"] = {STDLIB_NAME: stdlib_lm_sha256()}
        table["python"] = platform.python_version()
    return table


def _reads_stdlib(rows: Sequence[Mapping[str, Any]]) -> bool:
    return any(r["options"].get("dataset") == STDLIB_NAME for r in rows)


def read_table(path: str | Path) -> dict[str, Any]:
    """A table written by :func:`reference_table`, checked against its sampler version
    (and, when its tasks read the standard library's text, against this interpreter's).

    Raises:
        ValueError: a sampler version this code does not have, tasks that are not the
            seed's draw by the table's version, or another standard-library text.
    """
    table = json.loads(Path(path).read_text())
    version = table.get("sampler_version")
    if version not in SAMPLER_VERSIONS:
        raise ValueError(
            f"{path} is sampler v{version}'s table; this code has versions "
            f"{', '.join(map(str, SAMPLER_VERSIONS))}: draw and tune again"
        )
    reference_table(
        table["seed"], table["n"], table["tasks"], command="", commit="", version=version
    )
    if _reads_stdlib(table["tasks"]):
        made = table.get("texts", {}).get(STDLIB_NAME)
        if made != stdlib_lm_sha256():
            raise ValueError(
                f"{path} was tuned on the standard library text {made} (Python "
                f"{table.get('python', '?')}); this interpreter's (Python "
                f"{platform.python_version()}) is {stdlib_lm_sha256()}: tune the table again "
                "here"
            )
    return table


def mixture(table: Mapping[str, Any], observation: str, *, table_path: str) -> dict[str, Any]:
    """A mixture file (``experiments.task_mixture``) of a table's tasks at ``observation``."""
    tasks = []
    for row in table["tasks"]:
        task = SampledTask(row["name"], row["family"], row["options"])
        note = "at the grid's edge" if row["at_edge"] else "inside its grid"
        tasks.append(
            {
                "env_id": task.env_id_for(observation),
                "options": dict(row["options"]),
                "reference_lr": row["reference_lr"],
                "source": f"{table_path}, task {row['name']}: tuned cosine, {note}",
                "label": row["name"],
            }
        )
    notes = (
        f"Sampler v{table['sampler_version']} draw (seed {table['seed']}, {table['n']} "
        f"tasks), observation {observation}; reference LRs from {table_path}, made by "
        f"`{table['command']}` at {table['commit']}."
    )
    return {"notes": notes, "tasks": tasks}


def source_commit() -> str:
    """The checkout's commit (``git rev-parse --short HEAD``), or ``"unknown"`` outside git."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return done.stdout.strip() or "unknown"


def sampler_job(
    seed: int,
    n: int,
    out: str | Path,
    backend: Backend,
    *,
    table: str | Path,
    mixtures: str | Path | None = None,
    command: str = "",
    progress: bool = True,
    version: int = SAMPLER_VERSION,
) -> dict[str, Any]:
    """Draw ``n`` tasks from ``seed`` by sampler ``version``, tune their reference LRs into
    ``out`` (resumable), and write the table to ``table`` and, with ``mixtures``, one
    mixture file per observation version (``<mixtures>/sampler_v<V>_s<seed>_n<n>_<obs>.json``).

    Returns the table.
    """
    tasks = sample_tasks(seed, n, version)
    rows = tune_tasks(tasks, out, backend, progress=progress)
    result = reference_table(
        seed, n, rows, command=command, commit=source_commit(), version=version
    )
    write_json(table, result)
    if mixtures is not None:
        for observation in OBSERVATIONS:
            name = f"sampler_v{version}_s{seed}_n{n}_{observation}.json"
            write_json(Path(mixtures) / name, mixture(result, observation, table_path=str(table)))
    return result
