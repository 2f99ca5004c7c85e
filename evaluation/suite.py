"""The held-out suite: one fixed, versioned yardstick of whether a policy is tuning-free on
models it never trained on, and a small validation suite that model selection may look at.

Each :class:`Workload` is a trainee, a dataset and a budget that no training task of any
recipe uses (:func:`check_held_out` refuses a mixture or a main env that would), with its
reference LR: tuned cosine's, chosen on :data:`TUNING_SEEDS` by the lowest mean final
validation loss, with the optimum inside the grid (``scripts/tune_suite.py``, which widens
the grid until it is). Change a workload or a reference LR only with a new tuning run, and
bump :data:`VERSION`; a policy is evaluated on the suite (``scripts/run_suite.py``) only
after the version it names was committed.

Test suite and validation suite share no workload. Model selection of a recipe (a round,
a checkpoint, a variant) may read the validation suite only; the test suite is read once
per pre-registered plan, on a final-seed block of its own (``evaluation.seed_blocks``).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import gymnasium as gym

from common import seeds as seed_ranges
from envs.config import ENV_OPTIONS

VERSION = 1
TUNING_SEEDS: tuple[int, ...] = tuple(seed_ranges.take("baseline_tuning", 3))
K_VALUES: tuple[int, ...] = tuple(range(-3, 4))


@dataclass(frozen=True)
class Workload:
    """One workload of a suite.

    Attributes:
        name: a short, file-name-safe label (``resnet18_digits_256``).
        env_id: the registered env id.
        options: its ``gym.make`` options (trainee options and budget).
        reference_lr: tuned cosine's base LR (``k = 0`` of the sweep); None until tuned.
        why_held_out: why no training task covers it, and for a new architecture why it
            lies outside the training distribution.
        new_architecture: no training task may draw this trainee at all (any dataset or
            budget), not only this workload.
        ks: the LR factors ``2^k`` it is swept over (fewer than -3..3 where it must fit
            the time budget; the file says so in ``why_fewer``).
        n_seeds: final seeds per run (the first ``n_seeds`` of a plan's block).
        seconds_per_run: one cosine run's wall time, single-threaded on this project's
            2-core CPU: the median of the tuning runs, which shared the cores with two
            other jobs (an upper bound; it orders the workloads, cheapest first).
        tuning: the tuning table, ``((lr, mean final validation loss, tuning seeds), ...)``
            over the grid on :data:`TUNING_SEEDS` (``tuning.json`` of ``command``);
            ``reference_lr`` is its argmin, inside the grid.
        tuning_note: what the table does not say (a widened grid, a near tie).
        command: the command that wrote the tuning table.
        why_fewer: why ``ks`` or ``n_seeds`` is smaller than the suite's default.
        seed_range: the range its plans' seeds come from: ``final_evaluation`` (the test
            suite) or ``held_out`` (the validation suite, which model selection reads).
    """

    name: str
    env_id: str
    options: Mapping[str, Any]
    reference_lr: float | None
    why_held_out: str
    new_architecture: bool = False
    ks: tuple[int, ...] = K_VALUES
    n_seeds: int = 5
    seconds_per_run: float = 0.0
    tuning: tuple[tuple[float, float, int], ...] = ()
    tuning_note: str = ""
    command: str = ""
    why_fewer: str = ""
    seed_range: str = "final_evaluation"

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))  # frozen
        problems = []
        if not re.fullmatch(r"[a-z0-9_]+", self.name):
            problems.append(f"name={self.name!r} must be lower-case letters, digits and _")
        if 0 not in self.ks:
            problems.append(f"ks={self.ks} must include 0")
        if self.reference_lr is not None and not self.reference_lr > 0:
            problems.append(f"reference_lr={self.reference_lr} must be > 0")
        if self.n_seeds < 1:
            problems.append(f"n_seeds={self.n_seeds} must be >= 1")
        if self.seed_range not in ("final_evaluation", "held_out"):
            problems.append(f"seed_range={self.seed_range!r} must be final_evaluation or held_out")
        if problems:
            raise ValueError(f"workload {self.name}: " + "; ".join(problems))

    @property
    def trainee(self) -> str:
        """The trainee the env builds."""
        return str(self.kwargs()["trainee"])

    def kwargs(self) -> dict[str, Any]:
        """The registered options of the env id, with the workload's over them."""
        return dict(gym.spec(self.env_id).kwargs) | dict(self.options)

    def identity(self) -> str:
        """The trained model, data and budget as one string (``trainee_identity``)."""
        return trainee_identity(self.env_id, self.options)

    def plan(
        self, *, final_seeds: Sequence[int], methods: Sequence[str], policies: Sequence[str] = ()
    ) -> dict[str, Any]:
        """The per-workload sweep plan (``evaluation.sweep.sweep_from_plan``'s format) that
        a suite plan expands to: its first ``n_seeds`` final seeds.

        Raises:
            ValueError: not tuned yet, or fewer final seeds than ``n_seeds``.
        """
        if self.reference_lr is None:
            raise ValueError(f"workload {self.name} has no reference LR yet: run tune_suite.py")
        if len(final_seeds) < self.n_seeds:
            raise ValueError(
                f"workload {self.name} needs {self.n_seeds} final seeds; the plan gives "
                f"{len(final_seeds)}"
            )
        return {
            "env_id": self.env_id,
            "options": dict(self.options),
            "reference_lr": self.reference_lr,
            "ks": list(self.ks),
            "final_seeds": list(final_seeds[: self.n_seeds]),
            "methods": list(methods),
            "policies": list(policies),
            "reference": "cosine",
            "seed_range": self.seed_range,
        }


# a trainee's options that say how it is trained or evaluated, or where, not what: left
# out of a workload's identity, so that a task differing only in them is the same workload
# (a GPT preset is resolved into its fields, which stay)
HOW_OPTIONS = frozenset(
    {"base_lr", "device", "data_dir", "optimizer", "optimizer_options", "weight_decay",
     "betas", "grad_clip", "eval_samples", "eval_batches", "source_eval_windows", "preset",
     "build_base", "cache_dir"}
)  # fmt: skip


def _plain(value: Any) -> Any:
    """A config value in one canonical form: an integral float as an int, tuples as lists."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def trainee_identity(env_id: str, options: Mapping[str, Any]) -> str:
    """What a workload trains, as one string: the trainee and its resolved config (the
    env's registered options, ``options`` over them, every default and preset filled in),
    less :data:`HOW_OPTIONS` and the env's own options (cadence, reward, window...: how a
    policy is asked, not what is trained). Two tasks that train the same model on the same
    data for the same budget have the same identity however their options are written.

    Raises:
        ValueError: an option the trainee does not have (``trainees.factory``'s error).
    """
    from trainees.factory import _CLASSES, trainee_options  # the config classes only

    merged = dict(gym.spec(env_id).kwargs) | dict(options)
    name = merged.pop("trainee")
    valid = trainee_options(name)
    unknown = sorted(set(merged) - valid - ENV_OPTIONS)
    if unknown:
        raise ValueError(f"options {unknown} are neither {name}'s nor the env's")
    config = _CLASSES[name][1](**{k: v for k, v in merged.items() if k in valid})
    kept = {
        f.name: _plain(getattr(config, f.name))
        for f in dataclasses.fields(config)
        if f.name not in HOW_OPTIONS
    }
    return json.dumps({"trainee": name} | dict(sorted(kept.items())), default=str)


# -- the suites ---------------------------------------------------------------------------
_TRAINED_ON = (
    "every recipe so far trains on MLPs (2 layers, 128 hidden) on MNIST or digits, the "
    "tiny GPT on tiny Shakespeare and the synthetic quadratic"
)

SUITE: tuple[Workload, ...] = (
    Workload(
        name="mlp_mnist_wide_500",
        env_id="LRSchedule-MLP-v0",
        options={"dataset": "mnist", "total_steps": 500, "hidden": 1024},
        reference_lr=0.004,
        seconds_per_run=7.0,
        tuning=(
            (0.001, 0.108177, 3),
            (0.002, 0.0951236, 3),
            (0.004, 0.0923146, 3),
            (0.008, 0.110875, 3),
            (0.016, 0.146247, 3),
        ),
        command="python scripts/tune_suite.py --out runs/suite/tune --guess mlp_mnist_wide_500=4e-3 resnet18_digits_256=4e-3 gpt_tiny_1024=2e-3 --workers 1 --threads 1",
        why_held_out=f"the near one: {_TRAINED_ON}; this MLP is 8x wider and runs a budget "
        "(500 steps) no task uses",
    ),
    Workload(
        name="resnet18_digits_256",
        env_id="LRSchedule-ResNet18-v0",
        options={"dataset": "digits", "total_steps": 256, "width": 32},
        reference_lr=0.004,
        seconds_per_run=19.2,
        tuning=(
            (0.001, 0.0430034, 3),
            (0.002, 0.0345547, 3),
            (0.004, 0.0318989, 3),
            (0.008, 0.0454328, 3),
            (0.016, 0.0505068, 3),
        ),
        tuning_note="297 validation images: noisy, 2e-3 close",
        command="python scripts/tune_suite.py --out runs/suite/tune --guess mlp_mnist_wide_500=4e-3 resnet18_digits_256=4e-3 gpt_tiny_1024=2e-3 --workers 1 --threads 1",
        new_architecture=True,
        why_held_out=f"{_TRAINED_ON}: none is convolutional, residual or batch-normalised. "
        "Width 32 (half the standard channels) to fit the CPU budget. Not unseen: variants "
        "of the tuning-free recipe were compared on ResNet-18 at width 64 on digits at 256 "
        "steps (evaluation/plans/tuningfree_resnet_digits*.json), so this architecture and "
        "data were read in model selection, though never trained on",
    ),
    Workload(
        name="vit_mnist_1000",
        env_id="LRSchedule-ViT-v0",
        options={"dataset": "mnist", "total_steps": 1000},
        reference_lr=0.004,
        seconds_per_run=24.0,
        tuning=(
            (0.0005, 0.612529, 3),
            (0.001, 0.404348, 3),
            (0.002, 0.361229, 3),
            (0.004, 0.359597, 3),
            (0.008, 0.503338, 3),
        ),
        tuning_note="2e-3 within 0.5%",
        command="python scripts/tune_suite.py --out runs/suite/tune2 --guess vit_mnist_1000=2e-3 lstm_shakespeare_1000=4e-3 lora_256=2.4e-2 --workers 1 --threads 1",
        new_architecture=True,
        why_held_out=f"{_TRAINED_ON}: attention over image patches with LayerNorm, a loss "
        "landscape none of them has",
    ),
    Workload(
        name="lstm_shakespeare_1000",
        env_id="LRSchedule-LSTM-v0",
        options={"dataset": "shakespeare_char", "total_steps": 1000},
        reference_lr=0.032,
        seconds_per_run=31.0,
        tuning=(
            (0.001, 2.40868, 3),
            (0.002, 2.18963, 3),
            (0.004, 2.03525, 3),
            (0.008, 1.87046, 3),
            (0.016, 1.80411, 3),
            (0.032, 1.65728, 3),
            (0.064, 1.69602, 3),
        ),
        tuning_note="the grid widened twice past its top edge",
        command="python scripts/tune_suite.py --out runs/suite/tune2 --guess vit_mnist_1000=2e-3 lstm_shakespeare_1000=4e-3 lora_256=2.4e-2 --workers 1 --threads 1",
        new_architecture=True,
        why_held_out=f"{_TRAINED_ON}: a recurrent network, whose gradients through time "
        "behave unlike a transformer's",
    ),
    Workload(
        name="gpt_tiny_1024",
        env_id="LRSchedule-GPT-v0",
        options={"dataset": "shakespeare_char", "preset": "tiny", "total_steps": 1024},
        reference_lr=0.002,
        seconds_per_run=104.6,
        tuning=(
            (0.0005, 2.19069, 3),
            (0.001, 2.07403, 3),
            (0.002, 1.92324, 3),
            (0.004, 2.29331, 3),
            (0.008, 2.47564, 3),
        ),
        tuning_note="twice the 256-step reference",
        command="python scripts/tune_suite.py --out runs/suite/tune --guess mlp_mnist_wide_500=4e-3 resnet18_digits_256=4e-3 gpt_tiny_1024=2e-3 --workers 1 --threads 1",
        why_held_out="the tiny GPT trains at 128 steps in the mixture (and at the env's "
        "2,000 in the earliest recipes); 1,024 steps is a budget no task uses",
    ),
    Workload(
        name="lora_256",
        env_id="LRSchedule-LoRA-v0",
        options={
            "dataset": "shakespeare_char",
            "total_steps": 256,
            "steps_per_action": 32,
            "eval_every": 64,
        },
        reference_lr=0.006,
        seconds_per_run=6.6,
        tuning=(
            (0.003, 2.18443, 3),
            (0.006, 2.16198, 3),
            (0.012, 2.16317, 3),
            (0.024, 2.43492, 3),
            (0.048, 3.24671, 3),
            (0.096, 3.23585, 3),
        ),
        tuning_note="the grid widened once past its bottom edge; 1.2e-2 within 0.1%",
        command="python scripts/tune_suite.py --out runs/suite/tune2 --guess vit_mnist_1000=2e-3 lstm_shakespeare_1000=4e-3 lora_256=2.4e-2 --workers 1 --threads 1",
        new_architecture=True,
        why_held_out=f"{_TRAINED_ON}: only low-rank adapters of a pretrained byte-level GPT "
        "are trained, from a loss that starts low. At the suite's one cadence (32 steps an "
        "action, an evaluation every 64; the env registers 16 / 32) and 256 steps to fit "
        "the CPU budget. Transferred policies were evaluated on this env at 400 steps, "
        "cadence 16 / 32 (evaluation/plans/lr_sweep_lora.json); no recipe trained on it",
    ),
)

VALIDATION_SUITE: tuple[Workload, ...] = (
    Workload(
        name="val_mlp_digits_wide_300",
        env_id="LRSchedule-MLP-v0",
        options={"dataset": "digits", "total_steps": 300, "hidden": 512},
        reference_lr=0.016,
        seconds_per_run=0.3,
        tuning=(
            (0.004, 0.0545529, 3),
            (0.008, 0.0557416, 3),
            (0.016, 0.0531766, 3),
            (0.032, 0.0681774, 3),
            (0.064, 0.0669099, 3),
        ),
        tuning_note="297 validation images: noisy",
        command="python scripts/tune_suite.py --suite validation --out runs/suite/tune_val --guess val_mlp_digits_wide_300=1.6e-2 val_gpt_narrow_512=4e-3 --workers 1 --threads 1",
        seed_range="held_out",
        why_held_out="for model selection only: an MLP 4x wider than the mixture's, at a "
        "budget no task uses",
    ),
    Workload(
        name="val_gpt_narrow_512",
        env_id="LRSchedule-GPT-v0",
        options={
            "dataset": "shakespeare_char",
            "preset": "tiny",
            "total_steps": 512,
            "n_layer": 2,
            "n_embd": 64,
        },
        reference_lr=0.004,
        seconds_per_run=6.5,
        tuning=(
            (0.001, 2.41327, 3),
            (0.002, 2.33333, 3),
            (0.004, 2.2399, 3),
            (0.008, 2.4707, 3),
            (0.016, 2.52384, 3),
        ),
        command="python scripts/tune_suite.py --suite validation --out runs/suite/tune_val --guess val_mlp_digits_wide_300=1.6e-2 val_gpt_narrow_512=4e-3 --workers 1 --threads 1",
        seed_range="held_out",
        why_held_out="for model selection only: a GPT half as deep and wide as the tiny "
        "preset, at a budget no task uses",
    ),
)


# every version's suites, kept when a new one is added: a plan names its version, and its
# final-seed blocks (evaluation.seed_blocks) stay on the workloads it ran
SUITES: dict[int, dict[str, tuple[Workload, ...]]] = {
    1: {"test": SUITE, "validation": VALIDATION_SUITE},
}


def suite(name: str = "test", version: int = VERSION) -> tuple[Workload, ...]:
    """The workloads of suite ``name`` (``test``, the yardstick, or ``validation``) at
    ``version``.

    Raises:
        ValueError: another name or an unknown version.
    """
    if version not in SUITES:
        raise ValueError(f"unknown suite version {version!r}; valid: {', '.join(map(str, SUITES))}")
    if name not in SUITES[version]:
        raise ValueError(f"unknown suite {name!r}; valid: {', '.join(SUITES[version])}")
    return SUITES[version][name]


def method_seconds(workloads: Sequence[Workload]) -> float:
    """What one method that takes an LR costs over ``workloads``: its runs (every k, every
    seed) times their ``seconds_per_run``, single-threaded; divide by the workers for the
    wall time. Suite v1: 6,734 s, about 56 min on this project's 2 cores (limit: 2 h)."""
    return float(sum(len(w.ks) * w.n_seeds * w.seconds_per_run for w in workloads))


def held_out() -> tuple[Workload, ...]:
    """Every workload no recipe may train on: the test and validation suites' of every
    version (a workload an older version held out stays held out)."""
    every = [w for by_name in SUITES.values() for ws in by_name.values() for w in ws]
    return tuple({w.identity(): w for w in every}.values())


@dataclass(frozen=True)
class TrainingTask:
    """A task some recipe trains on: an env id and its options."""

    env_id: str
    options: Mapping[str, Any] = field(default_factory=dict)
    where: str = ""


def check_held_out(tasks: Iterable[TrainingTask], workloads: Sequence[Workload] = ()) -> None:
    """Refuse training tasks that are held-out workloads, or that draw a held-out
    architecture (``Workload.new_architecture``).

    Raises:
        ValueError: naming each offending task, where it comes from, and the workload.
    """
    workloads = tuple(workloads) or held_out()
    by_identity = {w.identity(): w for w in workloads}
    new_arch = {w.trainee: w for w in workloads if w.new_architecture}
    problems = []
    for t in tasks:
        label = f"{t.env_id} {dict(t.options)}" + (f" ({t.where})" if t.where else "")
        w = by_identity.get(trainee_identity(t.env_id, t.options))
        if w is not None:
            problems.append(f"training task {label} is held-out workload {w.name}")
        trainee = (dict(gym.spec(t.env_id).kwargs) | dict(t.options))["trainee"]
        if trainee in new_arch and w is None:
            problems.append(
                f"training task {label} draws trainee {trainee!r}, a held-out architecture "
                f"(workload {new_arch[trainee].name})"
            )
    if problems:
        raise ValueError(
            "; ".join(problems) + f". The held-out suite (evaluation/suite.py, v{VERSION}) "
            "is never trained on: pick another trainee, dataset or budget"
        )


def check_training_env(env_id: str, options: Mapping[str, Any], where: str) -> None:
    """``check_held_out`` for one env a training job (BC, PPO, Q-learning) is about to
    train on; ``where`` names the job in the error."""
    check_held_out([TrainingTask(env_id, options, where)])
