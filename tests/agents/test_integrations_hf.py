"""LearnedLRTrainer: a tiny GPT-2 in the Hugging Face Trainer gets the plain loop's LRs."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models are built from configs: never download

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from transformers import GPT2Config, GPT2LMHeadModel, TrainerCallback, TrainingArguments

from agents.integrations.hf import LearnedLRTrainer
from agents.scheduler import LearnedLRScheduler
from tests import spies

VOCAB, SEQ, BATCH = 48, 16, 4
TOTAL, EVAL_EVERY, SAVE_EVERY, LR, MAX_NORM = 16, 4, 5, 3e-3, 0.5
SETTINGS = dict(window=16, steps_per_action=2, eval_every=4, min_lr_mult=0.1, max_lr_mult=10.0)


def SignalPolicy() -> spies.SignalPolicy:  # noqa: N802 (a policy class's stand-in)
    """This module's signal-reading policy (``tests.spies.SignalPolicy``)."""
    return spies.SignalPolicy(bias=2.0, train=8.0, val=20.0)


def sequences(n: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """Learnable token sequences: arithmetic progressions mod VOCAB, random start and stride."""
    gen = torch.Generator().manual_seed(seed)
    start = torch.randint(VOCAB, (n, 1), generator=gen)
    stride = torch.randint(1, 3, (n, 1), generator=gen)
    ids = (start + stride * torch.arange(SEQ)) % VOCAB
    return [{"input_ids": x, "labels": labels(x)} for x in ids]


def labels(ids: torch.Tensor) -> torch.Tensor:
    """``ids`` with the first position ignored: it is never a target after the causal shift.

    The Trainer divides token sums by the count of labels other than -100 (and, from
    transformers 5.x, of the shifted labels when it knows the loss): then every version
    counts T - 1 per row and the loss is the plain mean.
    """
    out = ids.clone()
    out[..., 0] = -100
    return out


TRAIN, VAL = sequences(64, seed=1), sequences(8, seed=2)


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_gpt2() -> GPT2LMHeadModel:
    config = GPT2Config(
        n_layer=1,
        n_head=2,
        n_embd=16,
        vocab_size=VOCAB,
        n_positions=32,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=0,
        eos_token_id=0,
    )
    torch.manual_seed(0)  # the test's own model: the same initial weights in every run
    return GPT2LMHeadModel(config)


def evaluate(model: torch.nn.Module) -> float:
    """The validation loss as the Trainer computes it (one batch of 8)."""
    ids = torch.stack([x["input_ids"] for x in VAL])
    model.eval()
    with torch.no_grad():
        loss = model(input_ids=ids, labels=labels(ids)).loss
    model.train()
    return float(loss)


class Record(TrainerCallback):
    """The LR of every optimizer step, and every evaluation's loss with its step."""

    def __init__(self) -> None:
        self.lrs: list[float] = []
        self.evals: list[tuple[int, float]] = []

    def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        self.lrs.append(optimizer.param_groups[0]["lr"])

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if state.global_step > 0:
            self.evals.append((state.global_step, metrics["eval_loss"]))


class RecordingTrainer(LearnedLRTrainer):
    """Keeps the token ids of every training micro-batch, for the plain loop to replay."""

    def compute_loss(self, model, inputs, *args, **kwargs):
        if model.training:
            self.batches.append(inputs["input_ids"].clone())
        return super().compute_loss(model, inputs, *args, **kwargs)


def training_args(out, ga: int, **overrides) -> TrainingArguments:
    kwargs = dict(
        output_dir=str(out),
        max_steps=TOTAL,
        per_device_train_batch_size=BATCH,
        per_device_eval_batch_size=8,
        gradient_accumulation_steps=ga,
        learning_rate=LR,
        max_grad_norm=0.0,
        eval_strategy="steps",
        eval_steps=EVAL_EVERY,
        save_strategy="steps",
        save_steps=SAVE_EVERY,
        logging_steps=1000,
        report_to="none",
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
    )
    return TrainingArguments(**{**kwargs, **overrides})


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> dict[str, list]:
    """Every loss a LearnedLRScheduler observes, and every (step, val loss) reported to it."""
    seen: dict[str, list] = {"losses": [], "vals": []}
    observe, report = LearnedLRScheduler.observe, LearnedLRScheduler.report_val_loss

    def observing(self, loss, *, max_norm=None):
        seen["losses"].append(float(loss))
        observe(self, loss, max_norm=max_norm)

    def reporting(self, val_loss):
        seen["vals"].append((self.signals.steps_done, float(val_loss)))
        report(self, val_loss)

    monkeypatch.setattr(LearnedLRScheduler, "observe", observing)
    monkeypatch.setattr(LearnedLRScheduler, "report_val_loss", reporting)
    return seen


def run_trainer(out, ga: int, how: str, resume: str | None = None, observation: str = "v0"):
    """A Trainer run: its LRs and evaluations, and the micro-batches it trained on."""
    model = tiny_gpt2()
    record = Record()
    settings = SETTINGS | {"observation": observation}
    kwargs: dict = dict(policy=SignalPolicy(), scheduler_kwargs=settings)
    if how == "given":  # optimizers=(optimizer, LearnedLRScheduler)
        opt = torch.optim.AdamW(model.parameters(), lr=LR)
        sched = LearnedLRScheduler(
            opt,
            SignalPolicy(),
            model=model,
            total_steps=TOTAL,
            initial_val_loss=evaluate(model),
            **settings,
        )
        kwargs = dict(optimizers=(opt, sched))
    trainer = RecordingTrainer(
        model,
        training_args(out, ga),
        train_dataset=TRAIN,
        eval_dataset=VAL,
        callbacks=[record],
        max_norm=MAX_NORM,
        **kwargs,
    )
    trainer.batches = []
    trainer.train(resume_from_checkpoint=resume)
    return record, trainer.batches


def plain_lrs(
    batches: list[torch.Tensor], ga: int, *, report=True, loss_scale=1.0, observation="v0"
) -> list[float]:
    """LearnedLRScheduler in a hand-written loop on the Trainer's micro-batches."""
    model = tiny_gpt2()
    opt = torch.optim.AdamW(model.parameters(), lr=LR)
    sched = LearnedLRScheduler(
        opt,
        SignalPolicy(),
        model=model,
        total_steps=TOTAL,
        initial_val_loss=evaluate(model),
        **SETTINGS,
        observation=observation,
    )
    lrs = []
    for step in range(1, TOTAL + 1):
        total = 0.0
        for ids in batches[(step - 1) * ga : step * ga]:
            loss = model(input_ids=ids, labels=labels(ids)).loss / ga
            loss.backward()
            total = total + loss.detach()
        sched.observe(total * loss_scale, max_norm=MAX_NORM)
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        opt.zero_grad(set_to_none=True)
        if report and step % EVAL_EVERY == 0:
            sched.report_val_loss(evaluate(model))
        sched.step()
    return lrs


@pytest.mark.parametrize(
    ("ga", "how", "observation"), [(1, "built", "v0"), (2, "given", "v0"), (1, "given", "v1")]
)
def test_trainer_lrs_equal_the_plain_loop_and_resume(ga, how, observation, seen, tmp_path):
    record, batches = run_trainer(tmp_path / "run", ga, how, observation=observation)
    in_trainer = {key: list(values) for key, values in seen.items()}
    seen["losses"].clear()
    seen["vals"].clear()
    assert len(batches) == TOTAL * ga and len(record.lrs) == TOTAL
    expected = plain_lrs(batches, ga, observation=observation)
    assert record.lrs == expected  # exact: the same floats at every step
    assert len(set(expected)) > 3  # the LR really moves
    # each step's loss (the micro-batches' sum), up to rounding (the Trainer divides token sums
    # by the token count, not means by the micro-batch count) that Adam amplifies a little
    assert in_trainer["losses"] == pytest.approx(seen["losses"], rel=1e-3)
    # every evaluation reached the scheduler, after its own step, as in the plain loop
    steps = list(range(EVAL_EVERY, TOTAL + 1, EVAL_EVERY))
    assert [step for step, _ in record.evals] == steps
    assert in_trainer["vals"] == record.evals
    assert in_trainer["vals"] == [(step, pytest.approx(v, rel=1e-3)) for step, v in seen["vals"]]
    # a run resumed from the checkpoint of step 5 (mid-action) continues with the same LRs
    checkpoint = tmp_path / "run" / f"checkpoint-{SAVE_EVERY}"
    resumed, tail = run_trainer(
        tmp_path / "resumed", ga, how, resume=str(checkpoint), observation=observation
    )
    assert all(torch.equal(a, b) for a, b in zip(tail, batches[SAVE_EVERY * ga :], strict=True))
    assert resumed.lrs == record.lrs[SAVE_EVERY:]
    assert resumed.evals == record.evals[1:]


def test_a_wrong_loss_or_a_missing_evaluation_changes_the_lrs():
    """The equality above is meaningful: the policy's LRs depend on what is reported."""
    batches = list(torch.stack([x["input_ids"] for x in TRAIN]).split(BATCH))
    right = plain_lrs(batches, 1)
    assert plain_lrs(batches, 1, report=False) != right
    assert plain_lrs(batches, 1, loss_scale=0.5) != right  # e.g. one micro-batch of two


def test_bad_configuration_is_a_clear_error(tmp_path):
    model = tiny_gpt2()

    def args(**overrides) -> TrainingArguments:
        return training_args(tmp_path, 1, eval_strategy="no", **overrides)

    with pytest.raises(ValueError, match=r"max_grad_norm=1.0\) clips before"):
        LearnedLRTrainer(model, args(max_grad_norm=1.0), policy=SignalPolicy())
    with pytest.raises(ValueError, match=r"needs policy="):
        LearnedLRTrainer(model, args())
    opt = torch.optim.AdamW(model.parameters(), lr=LR)
    step_lr = torch.optim.lr_scheduler.StepLR(opt, 4)
    with pytest.raises(TypeError, match=r"optimizers=\(optimizer, StepLR\)"):
        LearnedLRTrainer(model, args(), optimizers=(opt, step_lr))
    with pytest.raises(ValueError, match=r"scheduler_kwargs \['total_steps'\] are set by"):
        LearnedLRTrainer(model, args(), policy=SignalPolicy(), scheduler_kwargs={"total_steps": 8})
    with pytest.raises(ValueError, match=r"max_norm=0 is invalid"):
        LearnedLRTrainer(model, args(), policy=SignalPolicy(), max_norm=0)
    trainer = LearnedLRTrainer(model, args(), train_dataset=TRAIN, policy=SignalPolicy())
    with pytest.raises(ValueError, match=r"pass initial_val_loss= or an eval_dataset"):
        trainer.train()


def test_the_shipped_policy_by_name(tmp_path):
    """policy="tuningfree" trains with the shipped policy; HF's AdamW, max_norm=1.0, 128
    steps and an evaluation every 64 are inside its domain, so nothing is warned."""
    import warnings

    from agents.scheduler import OutOfDomainWarning

    model = tiny_gpt2()
    args = training_args(tmp_path, 1, max_steps=128, eval_steps=64, save_strategy="no")
    trainer = LearnedLRTrainer(
        model, args, train_dataset=TRAIN, eval_dataset=VAL, policy="tuningfree", max_norm=1.0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", category=OutOfDomainWarning)
        trainer.train()
    sched = trainer.lr_scheduler.scheduler
    assert sched.policy.lrgym_pretrained.name == "tuningfree-v1"
    assert sched.steps_per_action == 32 and sched.signals.steps_done == 128
    assert sched.signals.last_eval_step == 128  # the evaluations reached it
