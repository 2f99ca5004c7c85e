"""What the drop-in scheduler costs a training loop: its time per optimizer step.

A loop that uses ``LearnedLRScheduler`` lets ``observe(loss, max_norm=...)`` clip the
gradients with the norms it reads, so the scheduler's calls replace what an ordinary
loop already does after ``backward()``: ``clip_grad_norm_`` and an LR scheduler's
``step()``. :func:`scheduler_overhead` times both loops on the same trainee and seed;
:func:`benchmark_scheduler` (the job behind ``scripts/bench_scheduler.py``) does so for
the trainees of several env ids.
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from agents.policy import PolicyConfig, make_policy, save_policy
from agents.scheduler import LearnedLRScheduler
from common.files import write_json
from envs.options import EnvOptions
from envs.rollout import Policy
from trainees.torch_trainee import TorchTrainee


def scheduler_overhead(
    trainee: TorchTrainee,
    policy: str | Policy,
    *,
    seed: int = 0,
    eval_every: int = 64,
    **settings: Any,
) -> dict[str, Any]:
    """Whole runs of ``trainee`` from ``seed`` in a plain PyTorch loop, timed.

    - ``learned``: driven by ``policy`` through ``LearnedLRScheduler``; its calls
      (``observe`` with the trainee's ``grad_clip`` as ``max_norm``, ``report_val_loss``,
      ``step``, the policy's forward pass every ``steps_per_action`` steps included).
    - ``baseline``: ``clip_grad_norm_`` and a cosine ``LambdaLR``, what the loop runs
      without the learned scheduler.
    - ``learned_unclipped`` and ``baseline_unclipped``: the same loops without clipping
      (only when the trainee clips; otherwise ``learned`` and ``baseline`` are those).

    In each iteration the LR-control calls are timed apart from the rest (data, forward,
    backward, ``optimizer.step()``), in two parts: after ``backward()`` (``observe``, or
    ``clip_grad_norm_``) and after ``optimizer.step()`` (``report_val_loss`` and ``step``
    with the policy's forward pass, or ``LambdaLR.step``); evaluations are excluded. The
    scheduler's gross cost is its calls' time; its net cost subtracts the baseline's
    control time, which the scheduler's calls replace.
    """
    clip = trainee.config.grad_clip
    total = trainee.total_steps
    runs = {}
    modes = [("baseline", clip), ("learned", clip)]
    if clip > 0:
        modes += [("baseline_unclipped", 0.0), ("learned_unclipped", 0.0)]
    for mode, max_norm in modes:
        learned = mode.startswith("learned")
        trainee.reset(seed)
        model, opt = trainee.model, trainee.optimizer
        if learned:
            sched: Any = LearnedLRScheduler(
                opt,
                policy,
                model=model,
                total_steps=total,
                initial_val_loss=trainee.evaluate(),
                eval_every=eval_every,
                **settings,
            )
            steps_per_action = sched.steps_per_action
        else:
            trainee.evaluate()
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda s: 0.5 * (1.0 + math.cos(math.pi * min(s, total) / total))
            )
        train_s: list[float] = []
        after_backward_s: list[float] = []  # observe (and its clipping), or clip_grad_norm_
        after_optimizer_s: list[float] = []  # report_val_loss + step (the policy), or LambdaLR
        for step in range(1, total + 1):
            t0 = time.perf_counter()
            model.train()
            x, y = trainee.next_batch(trainee._gen)
            opt.zero_grad(set_to_none=True)
            loss = trainee.loss(model, x, y)
            loss.backward()
            t1 = time.perf_counter()
            if learned:
                sched.observe(loss, max_norm=max_norm if max_norm > 0 else None)
            elif max_norm > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
            t2 = time.perf_counter()
            opt.step()
            float(loss.detach())  # an ordinary loop logs its loss
            t3 = time.perf_counter()
            evaluating = step % eval_every == 0 or step == total
            val = trainee.evaluate() if evaluating else None
            t3b = time.perf_counter()
            if learned and val is not None:
                sched.report_val_loss(val)
            sched.step()
            t4 = time.perf_counter()
            train_s.append((t1 - t0) + (t3 - t2))
            after_backward_s.append(t2 - t1)
            after_optimizer_s.append(t4 - t3b)
        control_s = [a + b for a, b in zip(after_backward_s, after_optimizer_s, strict=True)]
        runs[mode] = {
            "train_ms_per_step": 1e3 * statistics.fmean(train_s),
            "control_ms_per_step": 1e3 * statistics.fmean(control_s),
            "control_ms_per_step_median": 1e3 * statistics.median(control_s),
            "after_backward_ms_per_step": 1e3 * statistics.fmean(after_backward_s),
            "after_optimizer_ms_per_step": 1e3 * statistics.fmean(after_optimizer_s),
        }
    train_ms = runs["learned"]["train_ms_per_step"]
    out: dict[str, Any] = {
        "steps": total,
        "steps_per_action": steps_per_action,
        "grad_clip": clip,
        "train_ms_per_step": train_ms,
    }
    for suffix in ("", "_unclipped") if clip > 0 else ("",):
        gross = runs["learned" + suffix]["control_ms_per_step"]
        base = runs["baseline" + suffix]["control_ms_per_step"]
        out |= {
            f"scheduler_ms_per_step{suffix}": gross,
            f"baseline_control_ms_per_step{suffix}": base,
            f"net_ms_per_step{suffix}": gross - base,
            f"fraction{suffix}": gross / train_ms,
            f"net_fraction{suffix}": (gross - base) / train_ms,
        }
    return out | {"runs": runs}


def benchmark_scheduler(
    env_ids: Sequence[str],
    out: str | Path,
    *,
    options: EnvOptions | None = None,
    policy: str | None = None,
    record: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """:func:`scheduler_overhead` of each id's trainee, its lines printed, into the JSON ``out``.

    Args:
        env_ids: registered ids whose trainees are measured (with their ``eval_every``
            and ``steps_per_action``).
        out: the JSON file to write.
        options: env options (None keeps each id's default).
        policy: a policy file (None: a freshly built policy of the default size per id;
            inference costs the same trained or not).
        record: the command's arguments, stored as the report's ``args``.

    Returns:
        The report written: ``args``, ``torch_threads`` and ``results`` by id.
    """
    options = options or EnvOptions()
    report = {"args": dict(record or {}), "torch_threads": torch.get_num_threads(), "results": {}}
    for env_id in env_ids:
        env = options.make(env_id)
        inner = env.unwrapped
        file = policy
        with tempfile.TemporaryDirectory() as tmp:
            if file is None:
                net = make_policy(env.observation_space, env.action_space, PolicyConfig())
                file = str(
                    save_policy(net, Path(tmp) / "p.pt", PolicyConfig(), env=env, gamma=0.99)
                )
            r = scheduler_overhead(
                inner.trainee,
                file,
                eval_every=inner.config.eval_every,
                steps_per_action=inner.config.steps_per_action,
            )
        report["results"][env_id] = r
        for suffix in ("", "_unclipped"):
            if f"fraction{suffix}" in r:
                print(
                    f"{env_id:22s}{suffix:11s} trainee {r['train_ms_per_step']:7.2f} ms/step  "
                    f"scheduler {r['scheduler_ms_per_step' + suffix]:6.3f} ms/step = "
                    f"{100 * r['fraction' + suffix]:.2f} %  (it replaces "
                    f"{r['baseline_control_ms_per_step' + suffix]:6.3f} ms/step; net "
                    f"{r['net_ms_per_step' + suffix]:+6.3f} ms/step = "
                    f"{100 * r['net_fraction' + suffix]:+.2f} %)",
                    flush=True,
                )
    write_json(out, report)
    return report
