"""Final-seed blocks: each evaluation plan takes a block of final seeds of its own.

Once a block's results are seen, evaluating a new variant on it again lets the variant be
chosen on those very seeds. So two plans (``evaluation/plans/*.json``) on the same
workload (env id and options; a suite plan counts on each of its workloads) may share
final seeds only when one says it re-runs the other (``"rerun_of": "<the other plan's file name>"``) with the same methods and
policies. The plans written before this rule reused the block 10000… for one variant
after another; they are listed in :data:`LEGACY_PLANS` and may overlap each other, never
a new plan. :func:`check_block` is called before a sweep runs anything.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym

PLANS = Path(__file__).parent / "plans"

# the plans made before the rule (issue 32), which reused final seeds 10000… on the same
# workload for one variant after another; they keep their results, and no new plan may
# take their seeds on their workloads
LEGACY_PLANS = frozenset({
    "lr_sweep_gpt_tiny.json", "lr_sweep_lora.json", "lr_sweep_mlp_mnist.json",
    "lr_sweep_resnet_digits.json", "reward_ranking_mlp_mnist.json", "tuningfree_gpt_tiny.json",
    "tuningfree_gpt_tiny_mixwu.json", "tuningfree_gpt_tiny_r3.json",
    "tuningfree_gpt_tiny_warmup.json", "tuningfree_mlp_mnist.json",
    "tuningfree_mlp_mnist_mixwu.json", "tuningfree_mlp_mnist_mixwubc.json",
    "tuningfree_mlp_mnist_ppo_ablation.json", "tuningfree_mlp_mnist_r2.json",
    "tuningfree_mlp_mnist_r3.json", "tuningfree_mlp_mnist_warmup.json",
    "tuningfree_mlp_mnist_warmup_s2.json", "tuningfree_resnet_digits.json",
    "tuningfree_resnet_digits_mixwu.json", "tuningfree_resnet_digits_mixwubc.json",
    "tuningfree_resnet_digits_r3.json", "tuningfree_resnet_digits_warmup.json",
})  # fmt: skip


def workload(plan: Mapping[str, Any]) -> str:
    """The workload a plan evaluates on, as one string: its env id and the options it runs
    with (the id's registered ones, the plan's over them, so that an option left at its
    default and the same option given are one workload)."""
    options = dict(gym.spec(plan["env_id"]).kwargs) | dict(plan.get("options", {}))
    return json.dumps([plan["env_id"], dict(sorted(options.items()))], default=str)


def parts(plan: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A plan's per-workload parts: itself, or for a suite plan (``"suite"``,
    ``experiments.suite_job``) each workload of the suite's version it names, with its
    share of the seeds. A validation-suite plan has none: model selection reads that suite
    again and again by design, on ``held_out`` seeds, never on final ones."""
    if "suite" not in plan:
        return [dict(plan)]
    if plan["suite"] == "validation":
        return []
    from evaluation.suite import suite

    seeds = list(plan["final_seeds"])
    return [
        {"env_id": w.env_id, "options": dict(w.options), "final_seeds": seeds[: w.n_seeds]}
        for w in suite(plan["suite"], plan["version"])
    ]


def _methods(plan: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    return sorted(plan.get("methods", [])), sorted(plan.get("policies", []))


def block_conflicts(
    name: str, plan: Mapping[str, Any], others: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """Why plan ``name`` may not take its final seeds, given the other plans by file name:
    one line per other plan on the same workload that shares a seed and is neither a
    declared re-run of the same methods nor, like this one, a legacy plan."""
    out = []
    mine = parts(plan)
    for other_name, other in sorted(others.items()):
        if other_name == name:
            continue
        shared = sorted(
            {
                s
                for a in mine
                for b in parts(other)
                if workload(a) == workload(b)
                for s in set(a["final_seeds"]) & set(b["final_seeds"])
            }
        )
        if not shared or (name in LEGACY_PLANS and other_name in LEGACY_PLANS):
            continue
        rerun = plan.get("rerun_of") == other_name or other.get("rerun_of") == name
        if rerun and _methods(plan) == _methods(other):
            continue
        why = "its re-run has other methods" if rerun else "neither says it re-runs the other"
        seen = ", ".join(map(str, shared[:4])) + (
            f", ... ({len(shared)})" if len(shared) > 4 else ""
        )
        out.append(
            f"{name} shares final seeds {seen} with {other_name} on the same workload, and {why}"
        )
    return out


def read_plans(folder: str | Path = PLANS) -> dict[str, dict[str, Any]]:
    """Every plan of ``folder`` by file name."""
    return {p.name: json.loads(p.read_text()) for p in sorted(Path(folder).glob("*.json"))}


def check_block(plan_path: str | Path, folder: str | Path = PLANS) -> None:
    """Refuse a plan whose final seeds another plan of ``folder`` took on the same workload.

    A plan outside ``folder`` (a user's own) is checked against every plan in it.

    Raises:
        ValueError: naming each plan it collides with, the seeds, and the way out (a fresh
            block, or ``"rerun_of"`` with the same methods).
    """
    path = Path(plan_path)
    plan = json.loads(path.read_text())
    if ("env_id" not in plan and "suite" not in plan) or "final_seeds" not in plan:
        return  # not a whole plan: evaluation.sweep.sweep_from_plan names what is missing
    inside = path.resolve().parent == Path(folder).resolve()
    name = path.name if inside else str(path)  # only the folder's own plans can be legacy
    others = {n: p for n, p in read_plans(folder).items() if n != name}
    conflicts = block_conflicts(name, plan, others)
    if conflicts:
        raise ValueError(
            "; ".join(conflicts) + ". Take a fresh block of final seeds (a block whose "
            "results were seen is never reused for a new variant), or say "
            '"rerun_of": "<plan>" with the same methods and policies'
        )
