"""The LR error and correction slope of a suite's methods (``evaluation.lr_tracking``).

    python scripts/lr_tracking.py --suite runs/suite/v1_sampler

For each workload with a report in the suite's folder: each method's mean LR against tuned
cosine's, by the given LR's ``k``, and the slope of that error on ``k`` (1: no correction,
as cosine from the given LR; 0: the same LR from every start). Writes
``lr_tracking.json``, ``lr_tracking.csv`` and ``plots/lr_tracking.png`` (+ .csv).
"""

from __future__ import annotations

from dataclasses import dataclass

from common.cli import fail, parse
from evaluation.lr_tracking import suite_lr_tracking, write_lr_tracking


@dataclass(frozen=True)
class Args:
    """Track the LR each method trains at against the base LR it is given.

    Attributes:
        suite: a suite's output folder (``scripts/run_suite.py --out``).
        out: where the files go (None: the suite's folder).
    """

    suite: str
    out: str | None = None


def main(args: Args) -> None:
    try:
        result = suite_lr_tracking(args.suite)
    except ValueError as e:  # no workload report there: one line, exit status 2
        fail(str(e))
    png = write_lr_tracking(args.out or args.suite, result)
    for workload, tracked in result.items():
        slopes = ", ".join(
            f"{m} {r['slope']:.2f}" for m, r in tracked["methods"].items() if r["slope"] is not None
        )
        print(f"{workload}: correction slope {slopes}")
    print(f"wrote {png}")


if __name__ == "__main__":
    main(parse(Args))
