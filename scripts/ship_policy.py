"""Ship a trained policy: its Hub-format folder (safetensors, config.json, the model card)
with the card's table measured by the sweeps that evaluated it.

    python scripts/ship_policy.py --policy runs/tuningfree/ship_s0/policy.pt \
        --name tuningfree-v1 --card experiments/cards/tuningfree-v1.md \
        --workload "MLP-MNIST::trained on::runs/sweep/tuningfree_v1_mlp_mnist/results.json" \
        --column "ship_s0=tuningfree-v1" --results-page docs/results/tuningfree.md

Writes ``agents/pretrained/<name>/`` (package data: loadable by name) unless ``--out``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agents.hub import Domain
from common.cli import parse
from experiments.ship_policy import parse_policy, parse_workload, ship_policy


@dataclass(frozen=True)
class Args:
    """Write a policy as a shipped, Hub-format folder with its model card.

    Attributes:
        policy: the policy file (a recipe's ``policy.pt``).
        name: the versioned name (``tuningfree-v1``).
        card: the card's Markdown, with ``{table}`` where the measured table goes.
        workload: ``LABEL::RELATION::RESULTS_JSON`` per row of the table (a sweep's
            ``results.json``).
        column: ``METHOD=TITLE`` per policy column (the sweeps' method names).
        out: the folder (None: ``agents/pretrained/<name>``, the package data).
        results_page: a results page whose ``<name>`` table block gets the same table.
        optimizers: the optimizer classes it was trained with (its domain).
        min_steps: the smallest budget it was trained on.
        max_steps: the largest budget it was trained on.
        max_grad_norm: the gradient clipping it was trained with.
        command: the recipe's command (recorded in ``config.json``).
        commit: the commit the recipe ran at.
    """

    policy: str
    name: str
    card: str
    workload: tuple[str, ...]
    column: tuple[str, ...]
    out: str | None = None
    results_page: str | None = None
    optimizers: tuple[str, ...] = ("AdamW",)
    min_steps: int = 128
    max_steps: int = 2000
    max_grad_norm: float = 1.0
    command: str = ""
    commit: str = ""


def main(args: Args) -> None:
    out = args.out or str(Path(__file__).parents[1] / "agents" / "pretrained" / args.name)
    folder = ship_policy(
        args.policy,
        out,
        name=args.name,
        card=Path(args.card).read_text(),
        workloads=[parse_workload(w) for w in args.workload],
        policies=[parse_policy(c) for c in args.column],
        domain=Domain(
            optimizers=args.optimizers,
            total_steps=(args.min_steps, args.max_steps),
            max_grad_norm=args.max_grad_norm,
        ),
        training={"command": args.command, "commit": args.commit},
        results_page=args.results_page,
    )
    print(f"{args.name}: {folder}")


if __name__ == "__main__":
    main(parse(Args))
