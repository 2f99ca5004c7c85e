"""Character-level language modelling on tiny Shakespeare, enwik8 or text8 (the GPT also on the
Python standard library's sources, as bytes): the GPT and an LSTM."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common.checks import check as _check
from trainees.base import TraineeConfig
from trainees.data.chars import CORPORA, CharCorpus, CorpusName, load_char_corpus
from trainees.data.stdlib import BYTE_VOCAB, STDLIB_NAME, stdlib_corpus
from trainees.models.gpt import GPT, GPTModelConfig
from trainees.models.lstm import CharLSTM, LSTMModelConfig
from trainees.torch_trainee import TorchTrainee

# the GPT's corpora: the character corpora, and the standard library's sources as bytes
GPTDatasetName = Literal["shakespeare_char", "enwik8", "text8", "python_stdlib"]
GPT_DATASETS: tuple[str, ...] = get_args(GPTDatasetName)
STDLIB_LM_BYTES = 1_000_000  # the first megabyte of the sources (47 files on Python 3.11)

GPTPreset = Literal["tiny", "small"]
GPT_PRESETS: tuple[str, ...] = get_args(GPTPreset)

# tiny: trains on a laptop CPU in minutes; small: nanoGPT's shakespeare_char GPU reference.
PRESETS: dict[str, dict] = {
    "tiny": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, dropout=0.0),
    "small": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=64, dropout=0.2),
}


@dataclass(frozen=True)
class GPTConfig(TraineeConfig):
    """GPT trainee options; ``None`` fields take the preset's value.

    Attributes:
        preset: ``tiny`` (CPU) or ``small`` (GPU reference).
        dataset: ``shakespeare_char``, ``enwik8``, ``text8``, or ``python_stdlib``: the
            first :data:`STDLIB_LM_BYTES` of this interpreter's standard-library sources as
            bytes (:func:`stdlib_lm_corpus`; offline everywhere, ``data_dir`` unused).
        data_dir: folder with the corpus (prepared or raw); else ``$LRGYM_DATA_DIR``, ...
        eval_batches: number of fixed validation batches of ``batch_size`` windows each.
        n_layer, n_head, n_embd, block_size, dropout: architecture overrides.
    """

    preset: GPTPreset = "tiny"
    dataset: GPTDatasetName = "shakespeare_char"
    data_dir: str | None = None
    eval_batches: int = 4
    total_steps: int = 2000
    batch_size: int | None = None  # type: ignore[assignment]
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.99)  # beta2 0.99: few tokens per step (nanoGPT)
    n_layer: int | None = None
    n_head: int | None = None
    n_embd: int | None = None
    block_size: int | None = None
    dropout: float | None = None

    def __post_init__(self) -> None:
        _check(self.preset in GPT_PRESETS, "preset", self.preset, f"one of {GPT_PRESETS}")
        _check(self.dataset in GPT_DATASETS, "dataset", self.dataset, f"one of {GPT_DATASETS}")
        for name, value in PRESETS[self.preset].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        super().__post_init__()
        _check(self.eval_batches >= 1, "eval_batches", self.eval_batches, "an integer >= 1")
        _check(self.block_size >= 1, "block_size", self.block_size, "an integer >= 1")

    def model_config(self, vocab_size: int) -> GPTModelConfig:
        """The architecture for a vocabulary of ``vocab_size`` tokens."""
        names = {f.name for f in fields(GPTModelConfig)} - {"vocab_size", "bias"}
        return GPTModelConfig(vocab_size=vocab_size, **{n: getattr(self, n) for n in names})


@dataclass(frozen=True)
class LSTMConfig(TraineeConfig):
    """Character-level LSTM trainee options (the optimizer's as the tiny GPT's).

    Attributes:
        dataset: ``shakespeare_char``, ``enwik8`` or ``text8``.
        data_dir: folder with the corpus (prepared or raw); else ``$LRGYM_DATA_DIR``, ...
        eval_batches: number of fixed validation batches of ``batch_size`` windows each.
        n_layer: stacked LSTM layers.
        n_embd: embedding width, also every layer's hidden width.
        block_size: training window T (backpropagation through time over T steps).
        dropout: on the embeddings, between layers and on the output (0: none).
    """

    dataset: CorpusName = "shakespeare_char"
    data_dir: str | None = None
    eval_batches: int = 4
    total_steps: int = 2000
    batch_size: int = 12
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.99)  # beta2 0.99: few tokens per step (nanoGPT)
    n_layer: int = 2
    n_embd: int = 128
    block_size: int = 64
    dropout: float = 0.0

    def __post_init__(self) -> None:
        _check(self.dataset in CORPORA, "dataset", self.dataset, f"one of {CORPORA}")
        super().__post_init__()
        _check(self.eval_batches >= 1, "eval_batches", self.eval_batches, "an integer >= 1")
        _check(self.n_layer >= 1, "n_layer", self.n_layer, "an integer >= 1")
        _check(self.n_embd >= 1, "n_embd", self.n_embd, "an integer >= 1")
        _check(self.block_size >= 1, "block_size", self.block_size, "an integer >= 1")
        _check(0.0 <= self.dropout < 1.0, "dropout", self.dropout, "in [0, 1)")

    def model_config(self, vocab_size: int) -> LSTMModelConfig:
        """The architecture for a vocabulary of ``vocab_size`` tokens."""
        return LSTMModelConfig(vocab_size, self.n_layer, self.n_embd, self.dropout)


@functools.cache
def _stdlib_lm() -> tuple[CharCorpus, str]:
    corpus = stdlib_corpus(STDLIB_LM_BYTES)
    return CharCorpus(STDLIB_NAME, corpus.train, corpus.heldout, None, BYTE_VOCAB), corpus.sha256


def stdlib_lm_corpus() -> CharCorpus:
    """The standard library's first :data:`STDLIB_LM_BYTES` of sources as a byte corpus
    (``trainees.data.stdlib.stdlib_corpus``): its last 5% of bytes (the alphabetically
    last modules) split in two, validation then test; 256 tokens. Read once per process."""
    return _stdlib_lm()[0]


def stdlib_lm_sha256() -> str:
    """SHA-256 of :func:`stdlib_lm_corpus`'s text: another Python version's library is
    another text (a table tuned on one is refused on the other)."""
    return _stdlib_lm()[1]


def load_text_corpus(name: str, data_dir: str | None = None) -> CharCorpus:
    """A character corpus (``load_char_corpus``), or ``python_stdlib``'s bytes."""
    if name == STDLIB_NAME:
        return stdlib_lm_corpus()
    return load_char_corpus(name, data_dir=data_dir)


class CharLMTrainee(TorchTrainee):
    """Next-character prediction on random windows of the training split (as nanoGPT).

    ``evaluate()`` reads fixed windows of the validation split and ``test_metrics()``
    scores every token of the test split, adding ``test_bits_per_char``. A corpus
    without ``test.bin`` (tiny Shakespeare) has its validation region cut in two
    (``trainees.data.chars.val_test_cut``): the first half validates, the second half
    is the test split, held out from every episode.

    The data pipeline of every character-level model; a subclass builds and initialises
    the model, which maps token ids ``(B, T)`` to logits ``(B, T, V)`` and samples with
    ``generate`` as ``GPT.generate`` does. Its config has ``dataset``, ``data_dir``,
    ``batch_size``, ``block_size``, ``eval_batches`` and ``model_config(vocab_size)``, the
    architecture (with its ``dropout``).
    """

    config: GPTConfig | LSTMConfig

    def __init__(self, config: GPTConfig | LSTMConfig, corpus: CharCorpus | None = None):
        super().__init__(config)
        self.corpus = corpus or load_text_corpus(config.dataset, config.data_dir)
        self.model_config = config.model_config(self.corpus.vocab_size)
        self.uses_dropout = self.model_config.dropout > 0
        T = config.block_size
        val = self.corpus.val_tokens  # never the test split's tokens
        for split, tokens in (("train", self.corpus.train), ("val", val)):
            if len(tokens) < T + 2:
                raise ValueError(
                    f"{split} split has {len(tokens)} tokens; block_size={T} needs >= {T + 2}"
                )
        self._window = np.arange(T + 1)
        n_eval = config.eval_batches * config.batch_size
        starts = np.linspace(0, len(val) - T - 1, n_eval).astype(np.int64)
        self._val_windows = self._windows(val, starts)
        self._sample_gen = torch.Generator()
        self._test_tokens: torch.Tensor | None = None  # built by test_batches

    def _windows(self, data: np.ndarray, starts: np.ndarray) -> torch.Tensor:
        """``(len(starts), T + 1)`` int64 token windows on the device."""
        return torch.from_numpy(data[starts[:, None] + self._window].astype(np.int64)).to(
            self.device
        )

    def reset(self, seed: int) -> None:
        super().reset(seed)
        self._sample_gen.manual_seed(int(seed))

    def next_batch(self, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        high = len(self.corpus.train) - self.config.block_size - 1
        starts = torch.randint(0, high + 1, (self.config.batch_size,), generator=gen).numpy()
        w = self._windows(self.corpus.train, starts)
        return w[:, :-1], w[:, 1:]

    def eval_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        bs = self.config.batch_size
        for i in range(0, len(self._val_windows), bs):
            w = self._val_windows[i : i + bs]
            yield w[:, :-1], w[:, 1:]

    @property
    def test_split(self) -> str:
        """``"test"``: the split ``test_batches`` covers.

        That is ``test.bin`` (enwik8, text8), or for tiny Shakespeare the second half of
        its validation region, held out from every episode (``CharCorpus.test_tokens``).
        """
        return "test"

    def test_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The test split as non-overlapping windows, 64 per batch (nanoGPT-style).

        Windows of ``block_size + 1`` tokens at stride ``block_size`` (inputs ``w[:-1]``,
        targets ``w[1:]``), then one shorter window for the remaining tokens, so every
        token of the split but the first is predicted exactly once.

        Raises:
            ValueError: a split of fewer than 2 tokens (nothing to predict).
        """
        if self._test_tokens is None:  # on the device only from the first call
            split = self.corpus.test_tokens
            if len(split) < 2:
                raise ValueError(f"{self.test_split} split has {len(split)} tokens; needs >= 2")
            tokens = torch.from_numpy(np.asarray(split, dtype=np.int64))
            self._test_tokens = tokens.to(self.device)
        tokens, T, bs = self._test_tokens, self.config.block_size, 64
        n_windows = (len(tokens) - 1) // T
        windows = tokens[: n_windows * T + 1].unfold(0, T + 1, T)  # (n_windows, T + 1) view
        for i in range(0, n_windows, bs):
            w = windows[i : i + bs]
            yield w[:, :-1], w[:, 1:]
        if n_windows * T + 1 < len(tokens):  # the last 1 to T - 1 targets
            w = tokens[n_windows * T :][None]
            yield w[:, :-1], w[:, 1:]

    def test_metrics(self) -> dict[str, float | int | str]:
        """``TorchTrainee.test_metrics``, with ``test_bits_per_char`` (= loss / ln 2)."""
        metrics = super().test_metrics()
        metrics["test_bits_per_char"] = float(metrics["test_loss"]) / math.log(2)
        return metrics

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = model(x)
        return F.cross_entropy(logits.float().flatten(0, 1), y.flatten())

    @torch.no_grad()
    def generate(
        self, n_tokens: int, *, temperature: float = 1.0, top_k: int | None = None
    ) -> np.ndarray:
        """Sample ``n_tokens`` token ids after a one-token prompt (id 0), for speed metrics.

        Sampling uses its own generator (seeded by ``reset``) so it never changes training;
        it samples from the weights ``evaluate()`` scores (Schedule-Free's average).
        """
        if self.model is None:
            raise RuntimeError("call reset(seed) before generate")
        if n_tokens < 1 or temperature <= 0:
            raise ValueError(f"n_tokens={n_tokens} must be >= 1 and temperature={temperature} > 0")
        self._eval_mode()
        prompt = torch.zeros((1, 1), dtype=torch.long, device=self.device)
        with self._autocast():
            out = self.model.generate(
                prompt, n_tokens, temperature=temperature, top_k=top_k, generator=self._sample_gen
            )
        return out[0, 1:].cpu().numpy()


class GPTTrainee(CharLMTrainee):
    """The GPT (``trainees.models.gpt``) on a character corpus (``CharLMTrainee``'s data)."""

    config: GPTConfig

    def __init__(self, config: GPTConfig | None = None, corpus: CharCorpus | None = None):
        super().__init__(config or GPTConfig(), corpus)

    def build_model(self) -> nn.Module:
        return GPT(self.model_config)

    def init_weights(self, model: nn.Module, gen: torch.Generator) -> None:
        model.init_weights(gen)


class LSTMTrainee(CharLMTrainee):
    """A stacked LSTM (``trainees.models.lstm``) on a character corpus (``CharLMTrainee``'s data).

    Every window, training, validation or test, is read from a zero state: no state is
    carried between windows, and the gradient flows back through a window's ``block_size``
    steps.
    """

    config: LSTMConfig

    def __init__(self, config: LSTMConfig | None = None, corpus: CharCorpus | None = None):
        super().__init__(config or LSTMConfig(), corpus)

    def build_model(self) -> nn.Module:
        return CharLSTM(self.model_config)

    def init_weights(self, model: nn.Module, gen: torch.Generator) -> None:
        model.init_weights(gen)
