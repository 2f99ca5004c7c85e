"""Where the runs of an evaluation grid execute: local processes or Ray tasks.

A backend maps a picklable function over items and yields the results as they finish;
the caller writes each one at once (``evaluation.store.RunStore``). ``fn(item, threads)``
must be a pure function of its item for the backends to agree.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class LocalBackend:
    """Runs in local processes (``workers`` of them; 0 runs them in this process)."""

    def __init__(self, workers: int | None = None, threads: int = 1) -> None:
        cpus = os.cpu_count() or 1
        self.workers = max(1, cpus // threads) if workers is None else workers
        self.threads = threads
        if self.workers < 0 or threads < 1:
            raise ValueError(f"workers={workers} must be >= 0 and threads={threads} >= 1")

    def map_unordered(self, fn: Callable[[T, int], R], items: Sequence[T]) -> Iterator[R]:
        """``fn(item, threads)`` of each item, in the order they finish."""
        if self.workers == 0 or len(items) <= 1:
            yield from (fn(x, self.threads) for x in items)
            return
        # spawn: a fork would copy torch's thread pools and the parent's open envs
        with ProcessPoolExecutor(self.workers, mp_context=get_context("spawn")) as pool:
            pending = {pool.submit(fn, x, self.threads) for x in items}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (f.result() for f in done)

    def close(self) -> None:
        """Nothing to release: the process pool lives for one phase."""


class RayBackend:
    """Runs as Ray tasks (Ray Core, one task per run, ``threads`` CPUs each).

    Joins the cluster at ``address`` (``"auto"``, ``"HOST:6379"``), or starts a local Ray
    instance with ``num_cpus`` CPUs when ``address`` is None.
    """

    def __init__(
        self, address: str | None = None, threads: int = 1, num_cpus: int | None = None
    ) -> None:
        try:
            import ray
        except ImportError as e:
            raise ImportError(
                "the ray backend needs Ray: pip install -e '.[ray]' (or 'ray[default]')"
            ) from e
        self.ray, self.threads = ray, threads
        self.workers = num_cpus  # of a local instance; None: all its CPUs, or the cluster's
        env_vars = {
            k: os.environ[k] for k in ("LRGYM_DATA_DIR", "LRGYM_OFFLINE") if k in os.environ
        }
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"runtime_env": {"env_vars": env_vars}} if env_vars else {}
            if address is None:
                kwargs |= dict(num_cpus=num_cpus, include_dashboard=False)
            ray.init(address=address, log_to_driver=False, **kwargs)
            self._owns = True
        else:
            self._owns = False

    def map_unordered(self, fn: Callable[[T, int], R], items: Sequence[T]) -> Iterator[R]:
        """``fn(item, threads)`` of each item, in the order the tasks finish."""
        task = self.ray.remote(num_cpus=self.threads)(fn)
        pending = [task.remote(x, self.threads) for x in items]
        while pending:
            done, pending = self.ray.wait(pending, num_returns=1)
            yield from self.ray.get(done)

    def close(self) -> None:
        """Shut down the local Ray instance this backend started."""
        if self._owns:
            self.ray.shutdown()


Backend = LocalBackend | RayBackend


def make_backend(
    name: str, *, workers: int | None = None, threads: int = 1, ray_address: str | None = None
) -> Backend:
    """``local`` or ``ray`` (a ValueError names the valid backends)."""
    if name == "local":
        return LocalBackend(workers, threads)
    if name == "ray":
        return RayBackend(ray_address, threads, num_cpus=workers)
    raise ValueError(f"backend={name!r} is invalid; valid: local, ray")
