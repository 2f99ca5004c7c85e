"""LearnedLRScheduler: the LRs of a plain PyTorch loop equal the env's, bit for bit."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils import seeding

from agents.bc import BCConfig, train_actor
from agents.dagger import ExpertActor, relabel
from agents.policy import PolicyConfig, load_policy, make_policy, save_policy
from agents.scheduler import LearnedLRScheduler
from envs.rollout import run_episode
from experts.demos import to_trajectory
from experts.policy import SchedulePolicy
from experts.privileged import PrivilegedSchedulePolicy
from experts.schedules import Cosine, LinearWarmupDecay
from tests.spies import spy_lrs
from trainees import make_trainee

SMALL = PolicyConfig(features_dim=16, patch_size=8, d_model=16, n_layers=1)
MLP = ("LRSchedule-MLP-v0", dict(dataset="digits", total_steps=96), "mlp")
MLP_V1 = ("LRSchedule-MLP-v1", *MLP[1:])  # the dimensionless observation
SETTINGS = dict(window=32, steps_per_action=8, eval_every=16)


def gpt_case(corpus_dir: str) -> tuple[str, dict, str]:
    return "LRSchedule-GPT-v0", dict(data_dir=corpus_dir, total_steps=40), "gpt"


def trainee_seed(env_seed: int) -> int:
    """The trainee seed that ``env.reset(seed=env_seed)`` draws."""
    rng, _ = seeding.np_random(env_seed)
    return int(rng.integers(0, 2**31 - 1))


def env_lrs(env: gym.Env, policy, seed: int) -> list[list[float]]:
    """The LR of every param group at every optimizer step of one env episode."""
    seen = spy_lrs(env)
    try:
        run_episode(env, policy, seed)
    finally:
        del env.unwrapped.trainee.train_step  # the class's method again
    return seen


def loop_lrs(
    trainee,
    policy,
    seed: int,
    *,
    stop: int | None = None,
    state=None,
    clip_in_observe=False,
    **settings,
):
    """A plain PyTorch loop (not ``train_step``) driven by the scheduler.

    It clips with ``clip_grad_norm_`` after ``observe``, or with ``observe(max_norm=)``.
    Returns the LRs of each optimizer step, and at ``stop`` a checkpoint to resume from.
    """
    trainee.reset(trainee_seed(seed))
    model, opt, cfg = trainee.model, trainee.optimizer, trainee.config
    total, every = trainee.total_steps, settings.get("eval_every", SETTINGS["eval_every"])
    sched = LearnedLRScheduler(
        opt, policy, model=model, total_steps=total, initial_val_loss=trainee.evaluate(), **settings
    )
    first = 1
    if state is not None:  # resume: model, optimizer, data order and scheduler
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        trainee._gen.set_state(state["gen"])
        trainee._order, trainee._cursor = state["order"], state["cursor"]  # the epoch's order
        sched.load_state_dict(state["scheduler"])
        first = state["step"] + 1
    lrs = []
    for step in range(first, total + 1):
        model.train()
        x, y = trainee.next_batch(trainee._gen)
        opt.zero_grad(set_to_none=True)
        loss = trainee.loss(model, x, y)
        loss.backward()
        if clip_in_observe:
            sched.observe(loss, max_norm=cfg.grad_clip)
        else:
            sched.observe(loss)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        if step % every == 0 or step == total:
            sched.report_val_loss(trainee.evaluate())
        sched.step()
        if step == stop:
            return lrs, {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "gen": trainee._gen.get_state(),
                "scheduler": sched.state_dict(),
                "step": step,
                "order": trainee._order.clone(),
                "cursor": trainee._cursor,
            }
    return lrs, None


def bc_policy_file(env: gym.Env, tmp_path) -> str:
    """A BC policy (a few epochs on one demonstration of linear warm-up), saved to a file."""
    expert = SchedulePolicy(LinearWarmupDecay(warmup=0.25), env.action_space)
    demo = to_trajectory(run_episode(env, expert, seed=100))
    policy = make_policy(env.observation_space, env.action_space, SMALL, seed=0)
    train_actor(
        policy,
        [demo],
        BCConfig(epochs=3, batch_size=4),
        rng=np.random.default_rng(0),
        progress_bar=False,
    )
    return str(save_policy(policy, tmp_path / "bc.pt", SMALL, env=env, gamma=0.99))


@pytest.mark.parametrize("case", ["mlp", "gpt", "mlp-v1"])
def test_scheduler_applies_the_env_lrs_bit_for_bit(case, corpus_dir, tmp_path):
    env_id, kwargs, name = {"mlp": MLP, "mlp-v1": MLP_V1}.get(case) or gpt_case(corpus_dir)
    env = gym.make(env_id, **kwargs, **SETTINGS)
    path = bc_policy_file(env, tmp_path)
    policies = {
        "bc": (path, env.unwrapped.signature()),  # the file's env gives window, actions ...
        "expert": (SchedulePolicy(Cosine(warmup=0.1), env.action_space), SETTINGS),
    }
    for label, (policy, _) in policies.items():
        in_env = load_policy(policy, env, device="cpu") if label == "bc" else policy
        expected = env_lrs(env, in_env, seed=3)
        settings = {} if label == "bc" else SETTINGS
        got, _ = loop_lrs(make_trainee(name, **kwargs), policy, seed=3, **settings)
        assert len(got) == kwargs["total_steps"]
        assert got == expected, label  # exact: the same floats at every step and group
        assert len({round(g[0], 12) for g in got}) > 3, label  # the LR really moves


def test_observe_with_max_norm_clips_as_clip_grad_norm_bit_for_bit(tmp_path):
    env_id, kwargs, name = MLP
    env = gym.make(env_id, **kwargs, **SETTINGS)
    path = bc_policy_file(env, tmp_path)
    runs = {}
    for clip, clip_in_observe in ((0.05, False), (0.05, True), (1e6, True)):
        trainee = make_trainee(name, **kwargs, grad_clip=clip)
        lrs, _ = loop_lrs(trainee, path, seed=4, clip_in_observe=clip_in_observe)
        weights = [p.detach().clone() for p in trainee.model.parameters()]
        runs[clip, clip_in_observe] = lrs, weights
    (lrs_a, weights_a), (lrs_b, weights_b) = runs[0.05, False], runs[0.05, True]
    assert lrs_a == lrs_b
    assert all(torch.equal(a, b) for a, b in zip(weights_a, weights_b, strict=True))
    unclipped = runs[1e6, True][1]  # the clip at 0.05 really changed the run
    assert not all(torch.equal(a, b) for a, b in zip(weights_a, unclipped, strict=True))


@pytest.mark.parametrize("case", [MLP, MLP_V1], ids=["v0", "v1"])
def test_resumed_scheduler_continues_with_the_same_lrs(case, tmp_path):
    env_id, kwargs, name = case
    env = gym.make(env_id, **kwargs, **SETTINGS)
    path = bc_policy_file(env, tmp_path)
    whole, _ = loop_lrs(make_trainee(name, **kwargs), path, seed=5)
    head, state = loop_lrs(make_trainee(name, **kwargs), path, seed=5, stop=44)  # mid-action
    blob = tmp_path / "ckpt.pt"
    torch.save(state, blob)
    state = torch.load(blob, weights_only=True)  # plain values: loads without pickle
    tail, _ = loop_lrs(make_trainee(name, **kwargs), path, seed=5, state=state)
    assert head + tail == whole


def test_wrong_order_is_a_clear_error():
    trainee = make_trainee("quadratic", total_steps=16)
    trainee.reset(0)
    model, opt = trainee.model, trainee.optimizer
    env = gym.make("LRSchedule-Quadratic-v0")
    sched = LearnedLRScheduler(
        opt,
        SchedulePolicy(Cosine(), env.action_space),
        model=model,
        total_steps=16,
        initial_val_loss=trainee.evaluate(),
        window=8,
    )

    def backward():
        opt.zero_grad()
        x, y = trainee.next_batch(trainee._gen)
        loss = trainee.loss(model, x, y)
        loss.backward()
        return loss

    with pytest.raises(RuntimeError, match=r"step\(\) without observe\(\)"):
        sched.step()
    with pytest.raises(RuntimeError, match=r"no gradients: call observe\(\) after"):
        sched.observe(torch.tensor(1.0))
    loss = backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    with pytest.raises(RuntimeError, match=r"modified after backward\(\) \(clipped\?\)"):
        sched.observe(loss)
    loss = backward()
    opt.step()
    with pytest.raises(RuntimeError, match=r"before optimizer.step\(\)"):
        sched.observe(loss)
    sched._stepped_optimizer = False  # start the iteration again, in the right order
    loss = backward()
    sched.observe(loss, max_norm=0.5)  # reads the norms, then clips
    total = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
    assert float(total) <= 0.5 + 1e-6
    with pytest.raises(RuntimeError, match=r"already called in this iteration"):
        sched.observe(loss)
    opt.step()
    sched.step()
    assert sched.signals.steps_done == 1 and sched.last_epoch == 1
    with pytest.raises(RuntimeError, match=r"report_val_loss\(\) belongs after observe"):
        sched.report_val_loss(1.0)
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['windw'\]"):
        LearnedLRScheduler(
            opt,
            SchedulePolicy(Cosine(), env.action_space),
            model=model,
            total_steps=16,
            initial_val_loss=1.0,
            windw=8,
        )


def test_any_param_groups_keep_their_own_base_lr():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    opt = torch.optim.SGD(
        [
            {"params": model[0].parameters(), "lr": 0.1},
            {"params": model[2].parameters(), "lr": 0.01},
        ]
    )
    env = gym.make("LRSchedule-Quadratic-v0")
    schedule = Cosine(floor=0.1)
    sched = LearnedLRScheduler(
        opt,
        SchedulePolicy(schedule, env.action_space),
        model=model,
        total_steps=20,
        initial_val_loss=1.0,
        steps_per_action=10,
    )
    seen = []
    for _ in range(20):
        opt.zero_grad()
        model(torch.ones(2, 3)).pow(2).mean().backward()
        sched.observe(torch.tensor(0.5))
        seen.append(sched.get_last_lr())
        opt.step()
        sched.step()
    # two actions of 10 steps, at progress 0 and 0.5: multipliers 1 and cosine(0.5) = 0.55
    mid = schedule(0.5)
    assert mid == pytest.approx(0.55)
    assert seen[:10] == [[0.1, 0.01]] * 10
    assert seen[10:] == [[pytest.approx(0.1 * mid), pytest.approx(0.01 * mid)]] * 10


def test_a_tuning_free_policy_runs_unchanged_from_the_users_lr(tmp_path):
    """A policy trained on randomised base LRs (``base_lr_spread``) needs nothing but the
    user's LR: the scheduler's LRs equal the env's at that base LR, bit for bit."""
    env_id, kwargs, name = MLP
    trained_on = gym.make(env_id, **kwargs, **SETTINGS, base_lr=4e-3, base_lr_spread=8.0)
    expert = PrivilegedSchedulePolicy(Cosine(), trained_on.action_space, 4e-3)
    demo = relabel(run_episode(trained_on, ExpertActor(expert, trained_on), seed=100), expert)
    policy = make_policy(trained_on.observation_space, trained_on.action_space, SMALL, seed=0)
    train_actor(
        policy,
        [demo],
        BCConfig(epochs=3, batch_size=4),
        rng=np.random.default_rng(0),
        progress_bar=False,
    )
    path = save_policy(policy, tmp_path / "tuningfree.pt", SMALL, env=trained_on, gamma=0.99)
    user_lr = 1.5e-3  # not the reference, and not what the policy was trained around
    env = gym.make(env_id, **kwargs, **SETTINGS, base_lr=user_lr)
    in_env = load_policy(path, env, allow_mismatch=True, device="cpu")
    expected = env_lrs(env, in_env, seed=3)
    trainee = make_trainee(name, **kwargs, base_lr=user_lr)
    assert trainee.base_lr == user_lr  # the optimizer starts at the user's LR
    got, _ = loop_lrs(trainee, str(path), seed=3)  # the file alone: no base LR, no settings
    assert got == expected and len({g[0] for g in got}) > 3
