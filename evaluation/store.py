"""Where a grid's runs live: one file per finished run, the registered grid, fresh run folders."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from common.files import write_json
from evaluation.backends import Backend
from evaluation.grid import Grid
from evaluation.runs import RunSpec, execute


# -- the run folder -----------------------------------------------------------------------
class RunStore:
    """Finished runs, one JSON file each under ``folder/runs``; written as they finish."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder) / "runs"
        self.folder.mkdir(parents=True, exist_ok=True)

    def done(self) -> dict[str, dict[str, Any]]:
        """The finished runs by key."""
        return {p.stem: json.loads(p.read_text()) for p in sorted(self.folder.glob("*.json"))}

    def run(
        self,
        specs: Sequence[RunSpec],
        backend: Backend,
        *,
        desc: str = "runs",
        progress: bool = True,
        on_result: Callable[[dict[str, Any]], None] | None = None,
    ) -> list[dict[str, Any]]:
        """The results of ``specs``: those already in the folder, the others run now."""
        done = self.done()
        todo = [s for s in specs if s.key not in done]
        bar = tqdm(
            total=len(specs), initial=len(specs) - len(todo), desc=desc, disable=not progress
        )
        for result in backend.map_unordered(execute, todo):
            write_json(self.folder / f"{result['key']}.json", result)
            done[result["key"]] = result
            if on_result is not None:
                on_result(result)
            bar.update()
        bar.close()
        return [done[s.key] for s in specs]


def new_run_folder(root: str | Path, env: str, exp: str) -> Path:
    """A new, empty ``root/{env}__{exp}__{unix time}`` folder (cleanrl's layout); another
    one made in the same second gets ``-1``, ``-2``... after its time."""
    name, i = f"{env}__{exp}__{int(time.time())}", 0
    while True:
        path = Path(root) / (f"{name}-{i}" if i else name)
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            i += 1


def _registered(stored: dict[str, Any] | None, grid: Grid, has_runs: bool) -> dict[str, Any]:
    """The pre-registered methods, name -> digest: the methods of the invocation that
    first ran anything in the folder. A folder written before this record existed gives
    its stored methods' names, with their digests unknown (None)."""
    if stored is None or not has_runs:
        return {m.name: m.digest for m in grid.methods}
    if "preregistered" in stored:
        return stored["preregistered"]
    return {m["name"]: None for m in stored.get("methods", [])}


def open_folder(folder: str | Path, grid: Grid) -> Path:
    """Create ``folder`` for ``grid``, or reopen it when it holds the same grid.

    The methods may differ (a run's file name identifies its method's definition, so
    adding a method to a finished grid runs only the new method's runs); the envs,
    options, seeds, LR grid and reference may not. ``grid.json`` also records the
    pre-registered methods (:func:`added_after_results`).

    Raises:
        ValueError: the folder holds another grid (naming the differing fields).
    """
    folder = Path(folder)
    path = folder / "grid.json"
    current = grid.to_json()
    stored = json.loads(path.read_text()) if path.exists() else None
    if stored is not None:
        keys = (current.keys() | stored.keys()) - {"methods", "preregistered"}
        diff = sorted(k for k in keys if current.get(k) != stored.get(k))
        if diff:
            raise ValueError(
                f"{folder} holds another grid (differs in {', '.join(diff)}): resume it with "
                "the same arguments, or pass another --out"
            )
    has_runs = any((folder / "runs").glob("*.json"))
    write_json(path, current | {"preregistered": _registered(stored, grid, has_runs)})
    return folder


def added_after_results(folder: str | Path, grid: Grid) -> list[str]:
    """The methods of ``grid`` that were not pre-registered in ``folder`` (opened with
    :func:`open_folder`): added, or redefined, after the folder held results."""
    registered = json.loads((Path(folder) / "grid.json").read_text())["preregistered"]
    return [
        m.name
        for m in grid.methods
        if m.name not in registered or registered[m.name] not in (None, m.digest)
    ]
