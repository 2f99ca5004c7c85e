"""What the drop-in scheduler costs a training loop: its time per optimizer step."""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch

from agents.scheduler import LearnedLRScheduler
from envs.rollout import Policy
from trainees.base import TorchTrainee


def scheduler_overhead(
    trainee: TorchTrainee, policy: str | Policy, *, seed: int = 0, eval_every: int = 64,
    **settings: Any,
) -> dict[str, Any]:  # fmt: skip
    """One whole run of ``trainee`` in a plain PyTorch loop driven by ``policy``.

    The scheduler's calls (``observe``, ``report_val_loss``, ``step``, the policy's
    forward pass every ``steps_per_action`` steps included) are timed apart from the
    rest of each iteration (data, forward, backward, clipping, ``optimizer.step()``).
    Evaluations are excluded from both.
    """
    trainee.reset(seed)
    model, opt = trainee.model, trainee.optimizer
    total = trainee.total_steps
    sched = LearnedLRScheduler(opt, policy, model=model, total_steps=total,
                               initial_val_loss=trainee.evaluate(), eval_every=eval_every,
                               **settings)  # fmt: skip
    sched_s: list[float] = []
    train_s: list[float] = []
    for step in range(1, total + 1):
        t0 = time.perf_counter()
        model.train()
        x, y = trainee.next_batch(trainee._gen)
        opt.zero_grad(set_to_none=True)
        loss = trainee.loss(model, x, y)
        loss.backward()
        t1 = time.perf_counter()
        sched.observe(loss)
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), trainee.config.grad_clip)
        opt.step()
        float(loss.detach())  # an ordinary loop logs its loss
        t3 = time.perf_counter()
        if step % eval_every == 0 or step == total:
            val = trainee.evaluate()
            t3b = time.perf_counter()
            sched.report_val_loss(val)
        else:
            t3b = time.perf_counter()
        sched.step()
        t4 = time.perf_counter()
        train_s.append((t1 - t0) + (t3 - t2))
        sched_s.append((t2 - t1) + (t4 - t3b))
    train_mean, sched_mean = statistics.fmean(train_s), statistics.fmean(sched_s)
    return {
        "steps": total,
        "steps_per_action": sched.steps_per_action,
        "train_ms_per_step": 1e3 * train_mean,
        "scheduler_ms_per_step": 1e3 * sched_mean,
        "scheduler_ms_per_step_median": 1e3 * statistics.median(sched_s),
        "fraction": sched_mean / train_mean,
    }
