"""The methods a grid compares: expert schedules and optimizers (``METHODS``) and saved policy files, each with what it needs tuned."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from agents.policy import read_policy_file
from experts.schedules import SCHEDULES, make_schedule
from trainees.optimizers import OPTIMIZER_OPTIONS, OPTIMIZERS

Kind = Literal["schedule", "policy", "range_test"]


@dataclass(frozen=True)
class Method:
    """How a training run's learning rate is chosen.

    Attributes:
        name: the method's label in tables and file names.
        kind: ``schedule`` (an expert schedule), ``policy`` (a saved policy file) or
            ``range_test`` (an LR range test, then ``schedule`` at the LR it picked, in the
            steps left: ``evaluation.range_test``).
        schedule: the expert's name (``experts.schedules.SCHEDULES``), for ``schedule``
            and ``range_test``.
        params: the schedule's parameters.
        policy: the policy file, for ``policy``.
        optimizer: the trainees' optimizer (``trainees.optimizers.OPTIMIZERS``).
        tune: tune the base LR on the tuning seeds (False: ``base_lr`` or the env's). In
            an LR-sensitivity sweep a method with ``tune`` (or ``lr_option``) is run at
            every swept LR; one without either takes no LR and is run once.
        base_lr: a fixed base LR (Prodigy's 1.0); None keeps the env's.
        optimizer_options: fixed optimizer options (``trainees.optimizers.OPTIMIZER_OPTIONS``).
        lr_option: the optimizer option that the tuned or swept LR sets instead of the
            base LR (``d0`` of Prodigy or D-Adaptation: their initial step-size estimate),
            the trainee's base LR staying ``base_lr``.
    """

    name: str
    kind: Kind = "schedule"
    schedule: str | None = None
    params: dict[str, float] = field(default_factory=dict)
    policy: str | None = None
    optimizer: str = "adamw"
    tune: bool = True
    base_lr: float | None = None
    optimizer_options: dict[str, float] = field(default_factory=dict)
    lr_option: str | None = None

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or "__" in self.name:
            raise ValueError(f"method name {self.name!r} is invalid; expected a plain label")
        if self.kind in ("schedule", "range_test"):
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
            raise ValueError(
                f"method kind {self.kind!r} is invalid; valid: schedule, policy, range_test"
            )
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"method {self.name!r}: optimizer={self.optimizer!r} is invalid; valid: "
                + ", ".join(OPTIMIZERS)
            )
        if self.tune and self.base_lr is not None:
            raise ValueError(f"method {self.name!r}: a tuned method takes no fixed base_lr")
        valid = OPTIMIZER_OPTIONS.get(self.optimizer, ())
        for option in [*self.optimizer_options, *([self.lr_option] if self.lr_option else [])]:
            if option not in valid:
                raise ValueError(
                    f"method {self.name!r}: optimizer {self.optimizer!r} has no option "
                    f"{option!r}; valid: {', '.join(valid) or 'none'}"
                )
        if self.lr_option is not None and (self.tune or self.base_lr is None):
            raise ValueError(
                f"method {self.name!r}: lr_option={self.lr_option!r} needs tune=False and a "
                "fixed base_lr (the swept LR goes to the option, not to the base LR)"
            )

    @property
    def takes_lr(self) -> bool:
        """Whether a tuned or swept LR applies (to the base LR or to ``lr_option``)."""
        return self.tune or self.lr_option is not None

    @property
    def digest(self) -> str:
        """8 hex digits of the method's definition (and its policy file's bytes): a run
        folder reuses a run only for the very same method."""
        fields = dataclasses.asdict(self)
        for name in ("optimizer_options", "lr_option"):  # added later: absent when unused,
            if not fields[name]:  # so the methods defined before keep their digests
                del fields[name]
        h = hashlib.sha1(json.dumps(fields, sort_keys=True).encode())
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
    "constant",
    "cosine",
    "cosine_untuned",
    "cosine_warmup",
    "linear_warmup",
    "polynomial",
    "wsd",
    "schedulefree",
    "prodigy_cosine",
    "prodigy_d0_cosine",
    "dadapt_cosine",
    "dadapt_d0_cosine",
    "dog",
    "ldog",
    "mechanic_cosine",
    "adam_hd",
    "range_test_cosine",
]


# The grid's default methods (scripts/evaluate.py): the schedules and the optimizers the
# evaluation tables compare; the tuning-free ones below are the LR-sensitivity sweep's.
DEFAULT_METHODS: tuple[str, ...] = (
    "constant", "cosine", "cosine_untuned", "cosine_warmup", "linear_warmup", "polynomial",
    "wsd", "schedulefree", "prodigy_cosine",
)  # fmt: skip


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
        # -- what a user picks who cannot tune (the LR-sensitivity sweep) ---------------
        # Prodigy and D-Adaptation at lr=1.0 with cosine; the *_d0 forms start their step-
        # size estimate d at the given LR (d0) instead of the packages' 1e-6
        Method(
            "prodigy_d0_cosine",
            schedule="cosine",
            optimizer="prodigy",
            tune=False,
            base_lr=1.0,
            lr_option="d0",
        ),
        Method(
            "dadapt_cosine", schedule="cosine", optimizer="dadapt_adam", tune=False, base_lr=1.0
        ),
        Method(
            "dadapt_d0_cosine",
            schedule="cosine",
            optimizer="dadapt_adam",
            tune=False,
            base_lr=1.0,
            lr_option="d0",
        ),
        # DoG and L-DoG at lr=1.0 and no schedule, as their authors run them
        Method("dog", schedule="constant", optimizer="dog", tune=False, base_lr=1.0),
        Method("ldog", schedule="constant", optimizer="ldog", tune=False, base_lr=1.0),
        # Mechanic scales AdamW's updates, which follow the given LR with cosine
        Method("mechanic_cosine", schedule="cosine", optimizer="mechanic_adamw"),
        # Adam-HD adapts its step size from the given LR; no schedule on top
        Method("adam_hd", schedule="constant", optimizer="adam_hd"),
        # fastai-style: an LR range test in the run's own budget, then cosine at its pick
        Method("range_test_cosine", kind="range_test", schedule="cosine", tune=False),
    )
}


def policy_spec(spec: str) -> tuple[str, str]:
    """The name and path of ``"name=path"`` or of a path (named after the file)."""
    name, sep, path = spec.partition("=")
    return (name, path) if sep else (Path(spec).stem, spec)


def policy_name(spec: str) -> str:
    """The method name a policy ``"name=path"`` or path gets (the file is not read)."""
    return policy_spec(spec)[0]


def policy_method(spec: str, *, takes_lr: bool = False) -> Method:
    """A saved policy as a method: ``"name=path"`` or a path (named after the file).

    By default it runs at the base LR its file records (a policy sets multipliers of the
    base LR it was trained with), or at the env's when the file records none. With
    ``takes_lr`` it runs at the LR it is given, like a schedule: a tuning-free policy
    (``experiments.tuningfree``) in an LR-sensitivity sweep, where that LR is the swept
    one.
    """
    name, path = policy_spec(spec)
    if not Path(path).is_file():
        raise ValueError(f"policy file {path!r} does not exist")
    if takes_lr:
        return Method(name, kind="policy", policy=path, tune=True)
    base_lr = read_policy_file(path).env.get("trainee_options", {}).get("base_lr")
    return Method(name, kind="policy", policy=path, tune=False, base_lr=base_lr)
