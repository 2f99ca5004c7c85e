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

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
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
        tuning: the tuning table: LR grid, mean final validation loss per LR on
            :data:`TUNING_SEEDS`, the choice, and whether it is inside the grid.
        command: the command whose ``results.json`` holds the tuning runs.
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
    tuning: str = "not tuned yet"
    command: str = ""
    why_fewer: str = ""
    seed_range: str = "final_evaluation"

    def __post_init__(self) -> None:
        if 0 not in self.ks:
            raise ValueError(f"workload {self.name}: ks={self.ks} must include 0")
        if self.reference_lr is not None and not self.reference_lr > 0:
            raise ValueError(f"workload {self.name}: reference_lr={self.reference_lr} must be > 0")

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


def trainee_identity(env_id: str, options: Mapping[str, Any]) -> str:
    """What a workload trains, as one string: the env's registered options with ``options``
    over them, less the env's own options (cadence, reward, window, base LR...: how a
    policy is asked, not what is trained), and less ``data_dir`` (where the data lives)."""
    merged = dict(gym.spec(env_id).kwargs) | dict(options)
    kept = {k: v for k, v in merged.items() if k not in ENV_OPTIONS and k != "data_dir"}
    return json.dumps(dict(sorted(kept.items())), default=str)


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
        tuning="3 tuning seeds (2000-2002), mean final val loss 1e-3: 0.1082, 2e-3: 0.0951, 4e-3: 0.0923, 8e-3: 0.1109, 1.6e-2: 0.1462; 4e-3 chosen, inside the grid",
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
        tuning="3 tuning seeds (2000-2002), mean final val loss 1e-3: 0.0430, 2e-3: 0.0346, 4e-3: 0.0319, 8e-3: 0.0454, 1.6e-2: 0.0505; 4e-3 chosen, inside the grid (297 validation images: noisy, 2e-3 close)",
        command="python scripts/tune_suite.py --out runs/suite/tune --guess mlp_mnist_wide_500=4e-3 resnet18_digits_256=4e-3 gpt_tiny_1024=2e-3 --workers 1 --threads 1",
        new_architecture=True,
        why_held_out=f"{_TRAINED_ON}: none is convolutional, residual or batch-normalised. "
        "Width 32 (half the standard channels) to fit the CPU budget",
    ),
    Workload(
        name="vit_mnist_1000",
        env_id="LRSchedule-ViT-v0",
        options={"dataset": "mnist", "total_steps": 1000},
        reference_lr=0.004,
        seconds_per_run=24.0,
        tuning="3 tuning seeds (2000-2002), mean final val loss 5e-4: 0.6125, 1e-3: 0.4043, 2e-3: 0.3612, 4e-3: 0.3596, 8e-3: 0.5033; 4e-3 chosen, inside the grid (2e-3 barely behind)",
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
        tuning="3 tuning seeds (2000-2002), mean final val loss 1e-3: 2.4087, 2e-3: 2.1896, 4e-3: 2.0352, 8e-3: 1.8705, 1.6e-2: 1.8041, 3.2e-2: 1.6573, 6.4e-2: 1.6960 (the grid widened twice past its top edge); 3.2e-2 chosen, inside the grid",
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
        tuning="3 tuning seeds (2000-2002), mean final val loss 5e-4: 2.1907, 1e-3: 2.0740, 2e-3: 1.9232, 4e-3: 2.2933, 8e-3: 2.4756; 2e-3 chosen, inside the grid (twice the 256-step reference)",
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
        tuning="3 tuning seeds (2000-2002), mean final val loss 3e-3: 2.1844, 6e-3: 2.1620, 1.2e-2: 2.1632, 2.4e-2: 2.4349, 4.8e-2: 3.2467, 9.6e-2: 3.2358 (the grid widened once past its bottom edge); 6e-3 chosen, inside the grid (1.2e-2 barely behind)",
        command="python scripts/tune_suite.py --out runs/suite/tune2 --guess vit_mnist_1000=2e-3 lstm_shakespeare_1000=4e-3 lora_256=2.4e-2 --workers 1 --threads 1",
        new_architecture=True,
        why_held_out=f"{_TRAINED_ON}: only low-rank adapters of a pretrained byte-level GPT "
        "are trained, from a loss that starts low. At the suite's one cadence (32 steps an "
        "action, an evaluation every 64; the env registers 16 / 32) and 256 steps to fit "
        "the CPU budget",
    ),
)

VALIDATION_SUITE: tuple[Workload, ...] = (
    Workload(
        name="val_mlp_digits_wide_300",
        env_id="LRSchedule-MLP-v0",
        options={"dataset": "digits", "total_steps": 300, "hidden": 512},
        reference_lr=0.016,
        seconds_per_run=0.3,
        tuning="3 tuning seeds (2000-2002), mean final val loss 4e-3: 0.0546, 8e-3: 0.0557, 1.6e-2: 0.0532, 3.2e-2: 0.0682, 6.4e-2: 0.0669; 1.6e-2 chosen, inside the grid (297 validation images: noisy)",
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
        tuning="3 tuning seeds (2000-2002), mean final val loss 1e-3: 2.4133, 2e-3: 2.3333, 4e-3: 2.2399, 8e-3: 2.4707, 1.6e-2: 2.5238; 4e-3 chosen, inside the grid",
        command="python scripts/tune_suite.py --suite validation --out runs/suite/tune_val --guess val_mlp_digits_wide_300=1.6e-2 val_gpt_narrow_512=4e-3 --workers 1 --threads 1",
        seed_range="held_out",
        why_held_out="for model selection only: a GPT half as deep and wide as the tiny "
        "preset, at a budget no task uses",
    ),
)


def suite(name: str = "test") -> tuple[Workload, ...]:
    """The workloads of suite ``name``: ``test`` (the yardstick) or ``validation``.

    Raises:
        ValueError: another name.
    """
    suites = {"test": SUITE, "validation": VALIDATION_SUITE}
    if name not in suites:
        raise ValueError(f"unknown suite {name!r}; valid: {', '.join(suites)}")
    return suites[name]


def method_seconds(workloads: Sequence[Workload]) -> float:
    """What one method that takes an LR costs over ``workloads``: its runs (every k, every
    seed) times their ``seconds_per_run``, single-threaded; divide by the workers for the
    wall time. Suite v1: 6,734 s, about 56 min on this project's 2 cores (limit: 2 h)."""
    return float(sum(len(w.ks) * w.n_seeds * w.seconds_per_run for w in workloads))


def held_out() -> tuple[Workload, ...]:
    """Every workload no recipe may train on: the test suite's and the validation suite's."""
    return SUITE + VALIDATION_SUITE


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
