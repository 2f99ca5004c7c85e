"""Draw tasks from the task sampler and tune each one's reference LR (issue 33).

    python scripts/sample_tasks.py --seed 0 --n 24 --version 2 --out runs/sampler/v2_s0 \
        --table experiments/tasks/sampler_v2_s0_n24.json --mixtures experiments/mixtures \
        --workers 2 --threads 1

Cosine from the family's first guess · 2^k (k = -2..2) on the tuning seeds, widened past an
edge that holds the best LR until the best is inside (at most 3 times). Writes the
versioned reference table (with this command and the commit) and, with ``--mixtures``,
a mixture file per observation version for ``scripts/train_tuningfree.py --mixture``.
Interrupted, it resumes.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from typing import Literal

from common.cli import parse
from evaluation.backends import make_backend
from experiments.task_sampler import (
    SAMPLER_VERSION,
    check_table_name,
    check_version,
    sampler_job,
)


@dataclass(frozen=True)
class Args:
    """Draw and tune sampled tasks.

    Attributes:
        seed: the draw's seed.
        n: tasks to draw.
        out: the tuning runs' folder (a resume reopens it).
        table: where the reference table goes (JSON).
        version: the sampler version to draw with (1: MLPs, GPTs on tiny Shakespeare,
            quadratics; 2 adds small CNNs and GPTs on the standard library's sources).
        mixtures: a folder for the mixture files (None: none written).
        backend: local (processes) or ray (one Ray task per run).
        workers: local worker processes (Ray: CPUs), None for all cores.
        threads: torch threads per run.
        ray_address: a Ray cluster's address (None starts a local instance).
        progress: a progress bar.
    """

    seed: int
    n: int
    out: str
    table: str
    version: int = SAMPLER_VERSION
    mixtures: str | None = None
    backend: Literal["local", "ray"] = "local"
    workers: int | None = None
    threads: int = 1
    ray_address: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:  # refused when parsed, before any work
        check_version(self.version)
        check_table_name(self.table, self.version)


def main(args: Args) -> None:
    backend = make_backend(
        args.backend, workers=args.workers, threads=args.threads, ray_address=args.ray_address
    )
    command = shlex.join(["python", "scripts/sample_tasks.py", *sys.argv[1:]])
    try:
        table = sampler_job(
            args.seed,
            args.n,
            args.out,
            backend,
            table=args.table,
            mixtures=args.mixtures,
            command=command,
            progress=args.progress,
            version=args.version,
        )
    finally:
        backend.close()
    for row in table["tasks"]:
        edge = " (at the edge)" if row["at_edge"] else ""
        print(f"{row['name']}: {row['reference_lr']:.3g}{edge}")


if __name__ == "__main__":
    main(parse(Args))
