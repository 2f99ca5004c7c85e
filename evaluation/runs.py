"""One run of a method: its spec, and its execution as one env episode scored on the test split once it has ended."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import gymnasium as gym
import torch

from agents.policy import PolicyFile, build_policy, check_env, read_policy_file
from envs.observation import signature_observation
from envs.rollout import run_episode
from evaluation.methods import Method
from evaluation.range_test import RangeTest, range_test_steps, run_range_test
from evaluation.reward_ranking import PresetReturns
from experts.policy import SchedulePolicy
from experts.schedules import make_schedule

#: Keys of a last ``info`` that measure the clock (seconds, tokens per second): a run
#: record keeps them in ``final_timing``, apart from its reproducible ``final_info``.
TIMING_INFO = frozenset(
    {"total_train_time", "avg_inference_tokens_per_second", "train_tokens_per_second"}
)


# -- one run ------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunSpec:
    """One training run: a method on an env at a base LR and seed.

    Attributes:
        phase: ``tune`` (a tuning seed) or ``final`` (a final-evaluation seed).
        env_id: the registered env id.
        options: ``gym.make`` options on top of the id's (dataset, total_steps, ...).
        method: the method.
        base_lr: the base LR of the run (None: the env's).
        seed: the env seed.
    """

    phase: Literal["tune", "final"]
    env_id: str
    options: tuple[tuple[str, Any], ...]
    method: Method
    base_lr: float | None
    seed: int

    @property
    def key(self) -> str:
        """A unique, file-name-safe identifier of the run."""
        lr = "env" if self.base_lr is None else f"{self.base_lr:.6g}"
        m = f"{self.method.name}-{self.method.digest}"
        return f"{self.phase}__{self.env_id}__{m}__lr{lr}__s{self.seed}"

    def env_kwargs(self) -> dict[str, Any]:
        """The ``gym.make`` options of the run's env."""
        kwargs = dict(self.options)
        m = self.method
        if m.lr_option is not None:  # the run's LR is the option's; the base LR the method's
            kwargs["base_lr"] = m.base_lr
            kwargs["optimizer_options"] = m.optimizer_options | {m.lr_option: self.base_lr}
        else:
            if self.base_lr is not None:
                kwargs["base_lr"] = self.base_lr
            if m.optimizer_options:
                kwargs["optimizer_options"] = dict(m.optimizer_options)
        if m.optimizer != "adamw":
            kwargs["optimizer"] = m.optimizer
        return kwargs


_ENVS: dict[tuple, gym.Env] = {}  # per worker process: data is loaded once per env


def _env(env_id: str, kwargs: dict[str, Any]) -> gym.Env:
    key = (env_id, tuple(sorted((k, repr(v)) for k, v in kwargs.items())))
    if key not in _ENVS:
        if len(_ENVS) >= 4:  # a few datasets at most stay in memory
            _ENVS.pop(next(iter(_ENVS))).close()
        _ENVS[key] = gym.make(env_id, **kwargs)
    return _ENVS[key]


def _after_range_test(spec: RunSpec, env: gym.Env) -> tuple[gym.Env, dict[str, Any]]:
    """The range test on the run's initial weights, then the env of the rest of the run:
    the budget less the test's steps, at the picked LR (``evaluation.range_test``)."""
    total = env.unwrapped.trainee.config.total_steps
    test = RangeTest(range_test_steps(total))
    env.reset(seed=spec.seed)  # the trainee the episode starts from: same weights, data order
    result = run_range_test(env.unwrapped.trainee, test)
    kwargs = spec.env_kwargs() | {"total_steps": total - test.steps, "base_lr": result["lr"]}
    return _env(spec.env_id, kwargs), result


def _observation_options(saved: PolicyFile | None) -> dict[str, Any]:
    version = None if saved is None else signature_observation(saved.env)
    return {} if version is None else {"observation": version}


def policy_options(method: Method) -> dict[str, Any]:
    """The env options a policy method adds to its runs: the observation version its file
    reads (``{"observation": "v1"}``), so a v1 policy runs a workload's task through v1's
    signals; the trainee, data and budget are the workload's. Empty for other methods."""
    return _observation_options(
        read_policy_file(method.policy) if method.kind == "policy" else None
    )


def _policy(method: Method, env: gym.Env, saved: PolicyFile | None) -> tuple[Any, list[str]]:
    """The method's policy for ``env`` (a policy method's from its file's contents,
    ``saved``), and how the env differs from the policy's own (a transfer is recorded)."""
    if saved is None:
        schedule = make_schedule(method.schedule, **method.params)
        return SchedulePolicy(schedule, env.action_space), []
    mismatches = check_env(saved.env, env.unwrapped, allow_mismatch=True, source=method.policy)
    return build_policy(saved, device="cpu"), mismatches


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def execute(spec: RunSpec, threads: int = 1) -> dict[str, Any]:
    """Run ``spec`` to the end of its episode; its metrics and curves as plain values.

    The test split is evaluated once, after the episode has ended. Keys: the spec's
    fields, ``test_loss`` (and ``test_accuracy`` or ``test_bits_per_char``),
    ``test_split``, ``test_samples``, ``best_val_loss``, ``final_val_loss``, ``loss0``,
    ``diverged``, ``wall_seconds``, ``train_seconds``, ``steps``, ``policy_env_mismatches``,
    ``given_lr`` (the spec's LR, base LR or ``lr_option``), ``returns`` (the episode's
    return under every reward preset: ``evaluation.reward_ranking``), ``final_info`` (the
    numbers of the last step's ``info``, a trainee's own end-of-run metrics among them, less
    the clock's), ``final_timing`` (those of ``TIMING_INFO``), ``range_test`` and
    ``budget_steps`` (a range-test method's) and ``curve`` (optimizer step, LR and validation loss after each action). A
    non-finite value is None.

    Args:
        spec: the run.
        threads: torch intra-op threads (the same on every backend, for equal results).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        # a policy's file is read once: its observation version, then its network
        saved = read_policy_file(spec.method.policy) if spec.method.kind == "policy" else None
        env = _env(spec.env_id, spec.env_kwargs() | _observation_options(saved))
        range_test = None
        if spec.method.kind == "range_test":
            env, range_test = _after_range_test(spec, env)
        policy, mismatches = _policy(spec.method, env, saved)
        returns = PresetReturns(env)  # the return under every reward preset, beside the env's
        try:
            episode = run_episode(env, policy, spec.seed)
        finally:
            returns.close()
        # the library's one read of the test split: a final score, after the episode (the
        # training-time checks, e.g. the tuning-free recipe's per round, read validation)
        test = env.unwrapped.trainee.test_metrics()
    finally:
        torch.set_num_threads(previous)
    final = episode.final
    out: dict[str, Any] = {
        "key": spec.key,
        "phase": spec.phase,
        "env_id": spec.env_id,
        "method": spec.method.name,
        "optimizer": spec.method.optimizer,
        "base_lr": env.unwrapped.trainee.base_lr,
        "given_lr": spec.base_lr,
        "seed": spec.seed,
    }
    for name, value in test.items():
        out[name] = _finite(value) if isinstance(value, float) else value
    numbers = {
        k: _finite(float(v))
        for k, v in final.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    out |= {
        "best_val_loss": _finite(episode.best_val_loss),
        "final_val_loss": _finite(float(episode.val_losses[-1])),
        "loss0": float(env.unwrapped.loss0),
        "diverged": episode.diverged,
        "wall_seconds": episode.seconds,
        "train_seconds": float(final["total_train_time"]),
        "steps": int(final["step"]),
        "policy_env_mismatches": mismatches,
        "returns": returns.finish(episode.final),
        # the last info's numbers: a trainee's own end-of-run metrics (LoRA: forgetting);
        # the clock's apart, so that a run's record less its timing is reproducible
        "final_info": {k: v for k, v in numbers.items() if k not in TIMING_INFO},
        "final_timing": {k: v for k, v in numbers.items() if k in TIMING_INFO},
        "curve": {
            "step": episode.steps.tolist(),
            "lr": episode.lrs.tolist(),
            "val_loss": [_finite(v) for v in episode.val_losses],
        },
    }
    if range_test is not None:  # its steps were the budget's: steps + test steps = T
        out["range_test"] = range_test
        out["budget_steps"] = out["steps"] + range_test["steps"]
    return out
