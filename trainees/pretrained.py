"""A pretrained base for LoRA: the project's GPT with a byte vocabulary, pretrained once on the Python standard library's sources and cached.

:func:`pretrain_base` trains it (a ``GPTTrainee`` on :func:`trainees.data.stdlib.stdlib_corpus`
at a warm-up + cosine schedule) and writes ``<cache>/bases/<key>.pt``, where ``key``
hashes the architecture, the recipe and the corpus's SHA-256: any change builds another
base, never a stale one. The file is written atomically; a build checkpoints every
``checkpoint_every`` steps to ``<key>.partial.pt`` and resumes from it, bit for bit as an
uninterrupted build. :func:`load_base` refuses an unreadable file, or one whose tensors do
not fit the architecture, with :class:`BaseCacheError` naming the file.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import pickle
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from common.checks import check_fields
from common.files import atomic_write_bytes
from trainees.data.resolve import cache_dir as data_cache_dir
from trainees.data.stdlib import STDLIB_NAME, stdlib_corpus
from trainees.language import GPTConfig, GPTTrainee
from trainees.models.gpt import GPT, GPTModelConfig

FORMAT = "lrschedule-gym/gpt-base/v1"
BASES_SUBDIR = "bases"
log = logging.getLogger(__name__)


class BaseCacheError(RuntimeError):
    """A cached base file is unreadable, or does not hold the model it should."""


class BaseNotFoundError(BaseCacheError, FileNotFoundError):
    """No cached base exists and building one was not allowed."""


@dataclass(frozen=True)
class PretrainConfig:
    """What a base is: its architecture, its corpus and its training recipe.

    Every field enters the cache key (``key``). The defaults take about 3 minutes on
    2 CPU cores (``docs/lora.md``).

    Attributes:
        model: the GPT architecture; ``vocab_size`` must be 256 (bytes).
        corpus_bytes: the first bytes of the standard library's sources trained on (95 %)
            and held out (5 %).
        steps: optimizer steps.
        batch_size: windows of ``model.block_size`` bytes per step.
        lr: peak learning rate (linear warm-up over ``warmup`` steps, cosine decay to 10 %).
        warmup: warm-up steps (None: ``min(100, steps // 10)``).
        weight_decay: AdamW's decoupled weight decay.
        seed: weights and data order.
        eval_batches: held-out batches of ``batch_size`` windows for the reported loss.
    """

    model: GPTModelConfig = field(default_factory=lambda: GPTModelConfig(vocab_size=256))
    corpus_bytes: int = 2_000_000
    steps: int = 1500
    batch_size: int = 16
    lr: float = 3e-3
    warmup: int | None = None
    weight_decay: float = 0.1
    seed: int = 0
    eval_batches: int = 8

    def __post_init__(self) -> None:
        if self.warmup is None:
            object.__setattr__(self, "warmup", min(100, self.steps // 10))
        check_fields(
            self,
            [
                (self.model.vocab_size == 256, "model", "a GPTModelConfig with vocab_size=256"),
                (self.corpus_bytes >= 1000, "corpus_bytes", "an integer >= 1000"),
                (self.steps >= 1, "steps", "an integer >= 1"),
                (self.batch_size >= 1, "batch_size", "an integer >= 1"),
                (math.isfinite(self.lr) and self.lr > 0, "lr", "a finite number > 0"),
                (self.warmup >= 0, "warmup", "an integer >= 0"),
                (self.weight_decay >= 0, "weight_decay", ">= 0"),
                (self.eval_batches >= 1, "eval_batches", "an integer >= 1"),
            ],
        )

    def key(self, corpus_sha256: str) -> str:
        """16 hex digits naming the base built from this config and that corpus."""
        spec = {"format": FORMAT, "config": asdict(self), "corpus_sha256": corpus_sha256}
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]

    def lr_at(self, step: int) -> float:
        """The learning rate of optimizer step ``step`` (0-based)."""
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        progress = (step - self.warmup) / max(1, self.steps - self.warmup)
        return self.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


@dataclass(frozen=True)
class PretrainedBase:
    """A base in the cache.

    Attributes:
        path: the ``.pt`` file.
        heldout_loss: mean loss per byte on the held-out text (nats).
        train_seconds: wall time of the training that made it (all sessions of a resumed build).
        built: True when this call trained it, False when it was found in the cache.
    """

    path: Path
    heldout_loss: float
    train_seconds: float
    built: bool


def bases_dir(cache_dir: str | Path | None = None) -> Path:
    """Where bases live: ``cache_dir``, else ``<user cache>/bases`` (``$LRGYM_CACHE_DIR``...)."""
    return Path(cache_dir).expanduser() if cache_dir else data_cache_dir() / BASES_SUBDIR


def base_path(config: PretrainConfig, cache_dir: str | Path | None = None) -> Path:
    """The file the base of ``config`` is (or would be) cached in."""
    sha = stdlib_corpus(config.corpus_bytes).sha256
    return bases_dir(cache_dir) / f"{config.key(sha)}.pt"


def pretrain_base(
    config: PretrainConfig | None = None,
    *,
    cache_dir: str | Path | None = None,
    build: bool = True,
    device: str | None = None,
    checkpoint_every: int = 200,
    progress: Callable[[int, float], None] | None = None,
) -> PretrainedBase:
    """The base of ``config`` from the cache, trained (or resumed) first when absent.

    Args:
        config: the base (default: ``PretrainConfig()``).
        cache_dir: folder of base files (default: ``<user cache>/bases``).
        build: train a missing base; False makes a missing base an error.
        device: where to train (None: CUDA when available).
        checkpoint_every: optimizer steps between checkpoints of a build.
        progress: called as ``progress(step, train_loss)`` after every optimizer step.

    Raises:
        BaseNotFoundError: the base is absent and ``build`` is False.
        BaseCacheError: the cached base or checkpoint is unreadable.
        RuntimeError: training diverged (a non-finite loss or gradient).
    """
    config = config or PretrainConfig()
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every={checkpoint_every!r} is invalid; expected >= 1")
    corpus = stdlib_corpus(config.corpus_bytes)
    path = bases_dir(cache_dir) / f"{config.key(corpus.sha256)}.pt"
    if path.is_file():
        _, meta = load_base(path, config.model)
        return PretrainedBase(path, meta["heldout_loss"], meta["train_seconds"], built=False)
    if not build:
        raise BaseNotFoundError(
            f"no pretrained base at {path}; build it with `python scripts/pretrain_base.py` "
            "(the same architecture and recipe) or allow building (build_base=True)"
        )
    log.warning("pretraining a base GPT (once; cached at %s)", path)
    trainee = GPTTrainee(_trainee_config(config, device), corpus=corpus.as_char_corpus())
    trainee.reset(config.seed)
    partial = path.with_name(f"{path.stem}.partial.pt")
    seconds = _restore(trainee, partial) if partial.is_file() else 0.0
    t0 = time.perf_counter()
    while trainee.steps_done < config.steps:
        stats = trainee.train_step(config.lr_at(trainee.steps_done))
        if not stats.finite:
            raise RuntimeError(
                f"pretraining diverged at step {trainee.steps_done} (loss {stats.loss}); "
                f"lower lr={config.lr}"
            )
        if progress is not None:
            progress(trainee.steps_done, stats.loss)
        if trainee.steps_done % checkpoint_every == 0 and trainee.steps_done < config.steps:
            _checkpoint(trainee, partial, seconds + time.perf_counter() - t0)
    seconds += time.perf_counter() - t0
    heldout = trainee.evaluate()
    state = {k: v.detach().cpu() for k, v in trainee.model.state_dict().items()}
    meta = {
        "format": FORMAT,
        "model_config": asdict(config.model),
        "pretrain": asdict(config),
        "corpus": {
            "name": STDLIB_NAME,
            "sha256": corpus.sha256,
            "n_bytes": config.corpus_bytes,
            "n_files": corpus.n_files,
        },
        "heldout_loss": heldout,
        "train_seconds": seconds,
        "state_dict": state,
    }
    atomic_write_bytes(path, _to_bytes(meta))
    partial.unlink(missing_ok=True)
    return PretrainedBase(path, heldout, seconds, built=True)


def load_base(path: str | Path, model: GPTModelConfig | None = None) -> tuple[GPT, dict]:
    """The GPT a base file holds, and its metadata (without the weights).

    Args:
        path: a file :func:`pretrain_base` wrote.
        model: the architecture the file must hold (None: whatever it records).

    Raises:
        BaseCacheError: naming the file, when it is not a readable base, records another
            architecture, or holds tensors that do not fit it.
    """
    path = Path(path)
    meta = _read(path)
    try:
        recorded = GPTModelConfig(**meta["model_config"])
    except (TypeError, ValueError) as e:
        raise BaseCacheError(f"{path}: invalid model_config {meta['model_config']!r} ({e})") from e
    if model is not None and recorded != model:
        raise BaseCacheError(f"{path}: holds a GPT {recorded}, expected {model}")
    with torch.device("meta"):  # no initialisation (nor draws from the global RNG)
        gpt = GPT(recorded)
    try:
        gpt.load_state_dict(meta.pop("state_dict"), strict=True, assign=True)
    except (RuntimeError, TypeError) as e:
        raise BaseCacheError(
            f"{path}: its tensors do not fit {recorded} ({e}); delete the file to rebuild it"
        ) from e
    gpt.lm_head.weight = gpt.wte.weight  # assign=True gave each its own Parameter
    return gpt.eval(), meta


# -- internals -----------------------------------------------------------------------------
def _trainee_config(config: PretrainConfig, device: str | None) -> GPTConfig:
    m = config.model
    return GPTConfig(
        total_steps=config.steps,
        base_lr=config.lr,
        batch_size=config.batch_size,
        weight_decay=config.weight_decay,
        eval_batches=config.eval_batches,
        device=device,
        n_layer=m.n_layer,
        n_head=m.n_head,
        n_embd=m.n_embd,
        block_size=m.block_size,
        dropout=m.dropout,
    )


def _to_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _read(path: Path, required: tuple[str, ...] = ("model_config", "state_dict")) -> dict:
    """A base or checkpoint file's dictionary, or BaseCacheError naming the file."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (
        RuntimeError,
        pickle.UnpicklingError,
        EOFError,
        zipfile.BadZipFile,
        ValueError,
        OSError,
    ) as e:
        raise BaseCacheError(
            f"{path}: not a readable base file ({type(e).__name__}: {e}); delete it to rebuild it"
        ) from e
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise BaseCacheError(f"{path}: not a base file of format {FORMAT!r}; delete it to rebuild")
    missing = [k for k in required if k not in obj]
    if missing:
        raise BaseCacheError(f"{path}: lacks {missing}; delete it to rebuild it")
    return obj


def _checkpoint(trainee: GPTTrainee, path: Path, seconds: float) -> None:
    """Everything a build needs to go on from here exactly as it would have."""
    state = {
        "format": FORMAT,
        "step": trainee.steps_done,
        "seconds": seconds,
        "model_config": asdict(trainee.model_config),
        "state_dict": trainee.model.state_dict(),
        "optimizer": trainee.optimizer.state_dict(),
        "generator": trainee._gen.get_state(),
    }
    atomic_write_bytes(path, _to_bytes(state))


def _restore(trainee: GPTTrainee, path: Path) -> float:
    """Put a checkpoint into a freshly reset trainee; returns the seconds trained so far."""
    state = _read(path, ("model_config", "state_dict", "optimizer", "generator", "step"))
    if state["model_config"] != asdict(trainee.model_config):
        raise BaseCacheError(f"{path}: a checkpoint of another architecture; delete it")
    try:
        trainee.model.load_state_dict(state["state_dict"], strict=True)
        trainee.optimizer.load_state_dict(state["optimizer"])
        trainee._gen.set_state(state["generator"])
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        raise BaseCacheError(f"{path}: a checkpoint that does not fit ({e}); delete it") from e
    trainee.steps_done = int(state["step"])
    log.warning("resuming the base's pretraining at step %d from %s", trainee.steps_done, path)
    return float(state["seconds"])
