"""The LR-sensitivity sweep job behind ``scripts/sweep_lr.py``: a pre-registered plan run
(or resumed) on a backend, then its tables, plot and ``results.json``."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any

from common.files import atomic_write_bytes
from envs.config import EnvConfig
from evaluation.backends import Backend
from evaluation.methods import METHODS
from evaluation.reference_lrs import REFERENCE_LRS
from evaluation.seed_blocks import check_block
from evaluation.sweep import (
    check_action_bounds,
    check_pairs,
    run_sweep,
    sweep_from_plan,
)
from evaluation.sweep_report import write_sweep_report


def read_plan(path: str | Path) -> tuple[dict[str, Any], str]:
    """A plan file's contents and the SHA-1 of its bytes.

    Raises:
        FileNotFoundError: no such plan file.
    """
    data = Path(path).read_bytes()
    return json.loads(data), hashlib.sha1(data).hexdigest()


def check_arguments(
    plan_path: str | Path, add_methods: tuple[str, ...] = (), pairs: tuple[str, ...] = ()
) -> list[tuple[str, str]]:
    """Check a sweep's arguments against its plan before any work; the pairs as tuples.

    Raises:
        ValueError: a plan file that does not exist, one whose final seeds another plan
            took on the same workload (``evaluation.seed_blocks``), an unknown method in
            ``add_methods``, or a pair that is not ``A:B`` of two methods (or policies).
    """
    if not Path(plan_path).is_file():
        raise ValueError(f"plan {str(plan_path)!r} is not a file (see evaluation/plans/)")
    check_block(plan_path)
    plan, _ = read_plan(plan_path)
    unknown = [m for m in add_methods if m not in METHODS]
    if unknown:
        raise ValueError(f"--add-methods {unknown} are not methods; valid: {', '.join(METHODS)}")
    names = [*plan["methods"], *add_methods]
    names += [spec.partition("=")[0] for spec in plan.get("policies", [])]
    return check_pairs(names, pairs)


def previous_invocations(results: Path) -> list[dict[str, Any]]:
    """The invocations an earlier ``results.json`` of the folder records (none if absent)."""
    if not results.exists():
        return []
    prev = json.loads(results.read_text())
    if "invocations" in prev:
        return list(prev["invocations"])
    return [
        {
            "backend": prev["backend"],
            "wall_seconds": prev["wall_seconds_this_invocation"],
            "runs": prev["runs_this_invocation"],
        }
    ]


def reuse_runs(specs: list, out: str | Path, folders: tuple[str | Path, ...]) -> dict[str, int]:
    """Copy into ``out/runs`` the runs of ``specs`` that another folder finished and ``out``
    lacks; how many came from each folder.

    Raises:
        FileNotFoundError: a folder without ``runs/``.
    """
    dest = Path(out) / "runs"
    counts = {}
    for folder in folders:
        src = Path(folder) / "runs"
        if not src.is_dir():
            raise FileNotFoundError(f"--reuse {folder}: no runs/ folder there")
        n = 0
        for spec in specs:
            f = src / f"{spec.key}.json"
            if f.exists() and not (dest / f.name).exists():
                atomic_write_bytes(dest / f.name, f.read_bytes())
                n += 1
        counts[str(folder)] = n
    return counts


def previous_reuse(results: Path) -> dict[str, int]:
    """The reused-run counts an earlier ``results.json`` of the folder records."""
    return json.loads(results.read_text()).get("reused_runs", {}) if results.exists() else {}


def sweep_job(
    plan_path: str | Path,
    out: str | Path,
    backend: Backend,
    *,
    add_methods: tuple[str, ...] = (),
    reuse: tuple[str | Path, ...] = (),
    progress: bool = True,
    backend_name: str = "local",
    pairs: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Run the sweep a plan pre-registers into ``out`` (resuming what is there).

    Methods in ``add_methods`` run too and are labelled *added* (not pre-registered).
    ``reuse`` names other sweep folders whose finished runs this sweep needs (the same run
    key: phase, env, method digest, LR and seed, so the very same run); they are copied
    into ``out`` instead of run again, and ``results.json`` counts them per folder.
    ``pairs`` (``"A:B"``, methods of the sweep) add the paired difference A - B at every
    ``k`` to the report (an ablation; it runs nothing).

    Raises:
        ValueError: an unknown method, a pair that is not two of the sweep's methods, or
            a plan that is not a valid sweep.
    """
    checked_pairs = check_arguments(plan_path, add_methods, pairs)
    plan, digest = read_plan(plan_path)
    extra = [m for m in add_methods if m not in plan["methods"]]
    sweep = sweep_from_plan(plan | {"methods": [*plan["methods"], *extra]})
    defaults = EnvConfig()
    bounds = check_action_bounds(defaults.min_lr_mult, defaults.max_lr_mult, sweep.ks)
    reused = reuse_runs(sweep.specs(), out, reuse)
    t0 = time.perf_counter()
    before = sum(1 for _ in (Path(out) / "runs").glob("*.json"))
    result = run_sweep(sweep, out, backend, progress=progress)
    # pre-registered: the plan's methods (and only those the folder ran from the start)
    result["added_after_results"] = sorted(set(result["added_after_results"]) | set(extra))
    result["preregistered"] = [m for m in result["preregistered"] if m not in extra]
    entry = REFERENCE_LRS.get(sweep.env_id)
    this = {
        "backend": {
            "name": backend_name,
            "workers": getattr(backend, "workers", None),
            "threads": backend.threads,
        },
        "wall_seconds": time.perf_counter() - t0,
        "runs": len(result["runs"]) - before,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    invocations = [*previous_invocations(Path(out) / "results.json"), this]
    info = {
        "plan": str(plan_path),
        "plan_sha1": digest,
        "backend": this["backend"],
        "invocations": invocations,  # a resume keeps the record of the runs before it
        "wall_seconds_this_invocation": this["wall_seconds"],
        "runs_this_invocation": this["runs"],
        "wall_seconds_all_invocations": sum(i["wall_seconds"] for i in invocations),
        "runs": len(result["runs"]),
        "action_bounds": bounds,
        "reference_lr_entry": dataclasses.asdict(entry) if entry else None,
        "reused_runs": reused | previous_reuse(Path(out) / "results.json"),
    }
    return write_sweep_report(out, sweep, result, extra=info, pairs=checked_pairs)
