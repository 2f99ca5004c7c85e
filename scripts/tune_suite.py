"""Tune the reference LR (tuned cosine's base LR) of held-out suite workloads.

    python scripts/tune_suite.py --out runs/suite/tune --guess resnet18_digits_256=4e-3 \
        vit_mnist_1000=2e-3 --workers 2 --threads 1

Cosine from ``guess · 2^k`` (k = -2..2) on the tuning seeds (``evaluation.suite.TUNING_SEEDS``),
widened past an edge that holds the best LR until the best is inside. Writes
``out/tuning.json`` and ``out/tuning.md``; copy each choice, its table and this command
into ``evaluation/suite.py`` and bump its ``VERSION``. Interrupted, it resumes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from common.cli import parse
from evaluation.backends import make_backend
from experiments.suite_job import check_guesses, tune_job


@dataclass(frozen=True)
class Args:
    """Tune suite workloads' reference LRs.

    Attributes:
        out: the tuning folder (a resume reopens it).
        guess: ``name=lr`` per workload: the first guess, the grid's centre.
        suite: ``test`` or ``validation``.
        backend: local (processes) or ray (one Ray task per run).
        workers: local worker processes (Ray: CPUs), None for all cores.
        threads: torch threads per run.
        ray_address: a Ray cluster's address (None starts a local instance).
        progress: a progress bar.
    """

    out: str
    guess: tuple[str, ...]
    suite: Literal["test", "validation"] = "test"
    backend: Literal["local", "ray"] = "local"
    workers: int | None = None
    threads: int = 1
    ray_address: str | None = None
    progress: bool = True

    def guesses(self) -> dict[str, float]:
        """``--guess`` as ``{name: lr}``.

        Raises:
            ValueError: an entry that is not ``name=lr`` with a number > 0.
        """
        out = {}
        for text in self.guess:
            name, sep, lr = text.partition("=")
            try:
                value = float(lr)
            except ValueError:
                value = float("nan")
            if not sep or not value > 0:
                raise ValueError(f"--guess {text!r} is invalid; expected name=lr, lr > 0")
            out[name] = value
        return out

    def __post_init__(self) -> None:
        self.guesses()
        check_guesses([text.partition("=")[0] for text in self.guess], self.suite)


def main(args: Args) -> None:
    backend = make_backend(
        args.backend, workers=args.workers, threads=args.threads, ray_address=args.ray_address
    )
    try:
        results = tune_job(
            args.out, backend, args.guesses(), suite_name=args.suite, progress=args.progress
        )
    finally:
        backend.close()
    for name, r in results.items():
        print(f"{name}: {r['lr']:.3g}{' (at the edge)' if r['at_edge'] else ''}")


if __name__ == "__main__":
    main(parse(Args))
