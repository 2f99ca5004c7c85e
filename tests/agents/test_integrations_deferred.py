"""DeferredScheduler: the plain loop's LRs with step() moved to the next observe()."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from agents.integrations import DeferredScheduler
from agents.scheduler import LearnedLRScheduler
from envs.actions import ContinuousLogMultiplier
from experts.policy import SchedulePolicy
from experts.schedules import Cosine

TOTAL = 12
SETTINGS = dict(window=8, steps_per_action=2, eval_every=4)


def make(deferred: bool):
    gen = torch.Generator().manual_seed(0)
    model = torch.nn.Linear(3, 1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    policy = SchedulePolicy(Cosine(warmup=0.2), ContinuousLogMultiplier(1e-3, 100.0).space)
    sched = LearnedLRScheduler(
        opt, policy, model=model, total_steps=TOTAL, initial_val_loss=1.0, **SETTINGS
    )
    return model, opt, (DeferredScheduler(sched) if deferred else sched)


def run(deferred: bool, *, steps=range(1, TOTAL + 1), state=None):
    """LRs of a loop that steps the scheduler right after the optimizer, as trainers do."""
    model, opt, sched = make(deferred)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
    x = torch.linspace(-1, 1, 24).reshape(8, 3)
    lrs = []
    for step in steps:
        loss = (model(x) - 1).pow(2).mean()
        loss.backward()
        sched.observe(loss)
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        opt.zero_grad()
        if not deferred:  # the plain loop: evaluate, then step
            if step % 4 == 0:
                sched.report_val_loss(1.0 / step)
            sched.step()
        else:  # a trainer: step, then evaluate
            sched.step()
            if step % 4 == 0:
                sched.report_val_loss(1.0 / step)
    return lrs, {"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict()}


def test_deferred_step_gives_the_plain_loops_lrs_and_resumes(tmp_path):
    plain, _ = run(False)
    whole, _ = run(True)
    assert whole == plain and len(set(plain)) > 3
    head, state = run(True, steps=range(1, 6))
    torch.save(state, tmp_path / "state.pt")
    state = torch.load(tmp_path / "state.pt", weights_only=True)  # plain values
    tail, _ = run(True, steps=range(6, TOTAL + 1), state=state)
    assert head + tail == plain


def test_wrong_order_is_a_clear_error():
    model, opt, sched = make(True)
    with pytest.raises(RuntimeError, match=r"step\(\) without observe\(\)"):
        sched.step()
    model(torch.ones(2, 3)).sum().backward()
    sched.observe(torch.tensor(1.0))
    opt.step()
    with pytest.raises(RuntimeError, match=r"observe\(\) twice without step\(\).*skipped step"):
        sched.observe(torch.tensor(1.0))
    with pytest.raises(TypeError, match=r"expected a LearnedLRScheduler, got StepLR"):
        DeferredScheduler(torch.optim.lr_scheduler.StepLR(opt, 2))


def test_the_package_imports_no_trainer_library():
    code = (
        "import sys, agents.integrations as i; assert 'LearnedLRTrainer' in i.__all__; "
        "print(sorted({'torch', 'transformers', 'lightning'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
