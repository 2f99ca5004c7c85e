"""LearnedLRCallback: a tiny LightningModule gets the plain loop's LRs."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

L = pytest.importorskip("lightning")

from lightning.pytorch.callbacks import Callback, ModelCheckpoint  # noqa: E402

from agents.integrations.lightning import LearnedLRCallback  # noqa: E402
from agents.scheduler import LearnedLRScheduler  # noqa: E402
from tests import spies  # noqa: E402

BATCH, N_TRAIN, EPOCHS, VAL_EVERY, LR, CLIP = 4, 32, 3, 4, 0.05, 0.5
SETTINGS = dict(window=16, steps_per_action=2, eval_every=4, min_lr_mult=0.1, max_lr_mult=10.0)


def SignalPolicy() -> spies.SignalPolicy:  # noqa: N802 (a policy class's stand-in)
    """This module's signal-reading policy (``tests.spies.SignalPolicy``)."""
    return spies.SignalPolicy(bias=1.0, train=2.0, val=4.0)


def regression(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=gen)
    return x, x @ torch.tensor([[0.5], [-1.0], [0.25], [0.75]])


TRAIN, VAL = regression(N_TRAIN, seed=1), regression(16, seed=2)


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_net() -> nn.Module:
    torch.manual_seed(0)  # the test's own model: the same initial weights in every run
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))


def evaluate(net: nn.Module) -> float:
    with torch.no_grad():
        return float(F.mse_loss(net(VAL[0]), VAL[1]))


class Regressor(L.LightningModule):
    """Logs ``train_loss`` and ``val_loss``, as LearnedLRCallback needs; keeps its batches."""

    def __init__(self) -> None:
        super().__init__()
        self.net = tiny_net()
        self.batches: list[tuple[torch.Tensor, torch.Tensor]] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        self.batches.append((x.clone(), y.clone()))
        loss = F.mse_loss(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.mse_loss(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=LR)


class Record(Callback):
    """The LR of every optimizer step (after LearnedLRCallback set it), and val losses."""

    def __init__(self) -> None:
        self.lrs: list[float] = []
        self.vals: list[tuple[int, float]] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.lrs.append(optimizer.param_groups[0]["lr"])

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self.vals.append((trainer.global_step, float(trainer.callback_metrics["val_loss"])))


@pytest.fixture
def observed(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every loss a LearnedLRScheduler observes."""
    seen: list[float] = []
    observe = LearnedLRScheduler.observe

    def observing(self, loss, *, max_norm=None):
        seen.append(float(loss))
        observe(self, loss, max_norm=max_norm)

    monkeypatch.setattr(LearnedLRScheduler, "observe", observing)
    return seen


def loaders() -> tuple[torch.utils.data.DataLoader, torch.utils.data.DataLoader]:
    dataset = torch.utils.data.TensorDataset
    train = torch.utils.data.DataLoader(dataset(*TRAIN), batch_size=BATCH)
    return train, torch.utils.data.DataLoader(dataset(*VAL), batch_size=16)


def run_fit(out, ga: int, clip: str, resume: str | None = None, observation: str = "v0"):
    """A Lightning run: its LRs, val losses and batches, and its checkpoints' folder."""
    module, record = Regressor(), Record()
    callback = LearnedLRCallback(
        SignalPolicy(),
        initial_val_loss=evaluate(module.net),
        max_norm=CLIP if clip == "callback" else None,
        **SETTINGS,
        observation=observation,
    )
    trainer = L.Trainer(
        max_epochs=EPOCHS,
        accumulate_grad_batches=ga,
        val_check_interval=VAL_EVERY,
        gradient_clip_val=CLIP if clip == "lightning" else None,
        accelerator="cpu",
        devices=1,
        callbacks=[callback, record, ModelCheckpoint(dirpath=out, save_top_k=-1)],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, *loaders(), ckpt_path=resume)
    return record, module.batches, callback


def plain_lrs(
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    ga: int,
    *,
    report=True,
    loss_scale=1.0,
    observation="v0",
):
    """LearnedLRScheduler in a hand-written loop on Lightning's batches: LRs and val losses."""
    net = tiny_net()
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    total_steps = len(batches) // ga
    sched = LearnedLRScheduler(
        opt,
        SignalPolicy(),
        model=net,
        total_steps=total_steps,
        initial_val_loss=evaluate(net),
        **SETTINGS,
        observation=observation,
    )
    lrs, vals = [], []
    for step in range(1, total_steps + 1):
        total = 0
        for x, y in batches[(step - 1) * ga : step * ga]:
            loss = F.mse_loss(net(x), y) / ga
            loss.backward()
            total = total + loss.detach()
        sched.observe(total * loss_scale)
        torch.nn.utils.clip_grad_norm_(net.parameters(), CLIP)
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        opt.zero_grad(set_to_none=True)
        if report and (step * ga) % VAL_EVERY == 0:
            vals.append((step, evaluate(net)))
            sched.report_val_loss(vals[-1][1])
        sched.step()
    return lrs, vals


@pytest.mark.filterwarnings("ignore:The dirpath has changed")
@pytest.mark.parametrize(
    ("ga", "clip", "observation"),
    [(1, "callback", "v0"), (2, "lightning", "v0"), (1, "lightning", "v1")],
)
def test_lightning_lrs_equal_the_plain_loop_and_resume(ga, clip, observation, observed, tmp_path):
    record, batches, callback = run_fit(tmp_path / "run", ga, clip, observation=observation)
    in_lightning = list(observed)
    observed.clear()
    steps = EPOCHS * N_TRAIN // BATCH // ga
    assert len(batches) == steps * ga and len(record.lrs) == steps
    expected, vals = plain_lrs(batches, ga, observation=observation)
    assert record.lrs == expected  # exact: the same floats at every step
    assert len(set(expected)) > 3  # the LR really moves
    assert in_lightning == observed  # each step's loss, the accumulated batches' mean, exactly
    # every validation reached the scheduler, right after its own step
    assert [step for step, _ in record.vals] == [step for step, _ in vals]
    assert record.vals == [(step, pytest.approx(v, rel=1e-6)) for step, v in vals]
    assert callback.scheduler.scheduler.signals.last_eval_step == steps
    # a run resumed from the end of epoch 1 continues with the same LRs (a checkpoint in
    # mid-epoch would replay the epoch's first batches: a plain DataLoader is not resumable)
    checkpoint = tmp_path / "run" / f"epoch=0-step={steps // EPOCHS}.ckpt"
    resumed, tail, _ = run_fit(
        tmp_path / "resumed", ga, clip, resume=str(checkpoint), observation=observation
    )
    assert len(tail) == len(batches) - N_TRAIN // BATCH
    assert resumed.lrs == record.lrs[steps // EPOCHS :]
    assert resumed.vals == [v for v in record.vals if v[0] > steps // EPOCHS]


def test_a_wrong_loss_or_a_missing_validation_changes_the_lrs():
    """The equality above is meaningful: the policy's LRs depend on what is reported."""
    batches = list(zip(TRAIN[0].split(BATCH), TRAIN[1].split(BATCH), strict=True)) * EPOCHS
    right, _ = plain_lrs(batches, 1)
    assert plain_lrs(batches, 1, report=False)[0] != right
    assert plain_lrs(batches, 1, loss_scale=0.5)[0] != right


@pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no `val_dataloader`")
def test_bad_configuration_is_a_clear_error(tmp_path):
    class NoLog(Regressor):
        def training_step(self, batch, batch_idx):
            return F.mse_loss(self.net(batch[0]), batch[1])

    def fit(module, **kwargs):
        trainer = L.Trainer(
            max_steps=2,
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            **kwargs,
        )
        trainer.fit(module, loaders()[0])

    callback = LearnedLRCallback(SignalPolicy(), initial_val_loss=1.0, **SETTINGS)
    with pytest.raises(KeyError, match=r"no 'train_loss'.*self.log\('train_loss', loss\)"):
        fit(NoLog(), callbacks=[callback])
    callback = LearnedLRCallback(SignalPolicy(), initial_val_loss=1.0, max_norm=1.0, **SETTINGS)
    with pytest.raises(ValueError, match=r"max_norm=1.0 and Trainer\(gradient_clip_val=0.5\)"):
        fit(Regressor(), callbacks=[callback], gradient_clip_val=0.5)
    with pytest.raises(ValueError, match=r"max_norm=-1 is invalid"):
        LearnedLRCallback(SignalPolicy(), initial_val_loss=1.0, max_norm=-1)


def test_the_shipped_policy_by_name_and_its_domain_warning(tmp_path):
    """The callback takes a shipped name; this module's SGD and 16 steps are outside its
    domain: one warning for each, once."""
    from agents.scheduler import OutOfDomainWarning

    module = Regressor()
    callback = LearnedLRCallback("tuningfree", initial_val_loss=evaluate(module.net), max_norm=1.0)
    trainer = L.Trainer(
        max_steps=16,
        val_check_interval=4,
        accelerator="cpu",
        devices=1,
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with pytest.warns(OutOfDomainWarning) as seen:
        trainer.fit(module, *loaders())
    messages = [str(w.message) for w in seen if w.category is OutOfDomainWarning]
    assert messages == [
        "tuningfree-v1 used outside its trained domain: optimizer SGD (trained with AdamW)",
        "tuningfree-v1 used outside its trained domain: total_steps=16 (trained on 128..2000)",
    ]
    assert callback.scheduler.scheduler.policy.lrgym_pretrained.name == "tuningfree-v1"
