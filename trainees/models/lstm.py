"""A character-level LSTM language model: embedding -> stacked LSTM -> linear head.

Shapes: B batch, T time, C channels (the embedding width is the hidden width), V
vocabulary. Token ids ``(B, T)`` -> next-token logits ``(B, T, V)``, each window read
from a zero state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class LSTMModelConfig:
    """Architecture of the LSTM language model.

    Attributes:
        vocab_size: number of tokens (65 for tiny Shakespeare).
        n_layer: stacked LSTM layers.
        n_embd: embedding width, which is also every layer's hidden width C.
        dropout: on the embeddings, between the LSTM layers and on the last layer's
            output (Zaremba et al., 2014); 0 by default.
    """

    vocab_size: int = 65
    n_layer: int = 2
    n_embd: int = 128
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_layer", "n_embd"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r} must be an integer >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout} must be in [0, 1)")


class CharLSTM(nn.Module):
    """Token ids ``(B, T)`` -> next-token logits ``(B, T, V)``."""

    def __init__(self, cfg: LSTMModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.lstm = nn.LSTM(
            cfg.n_embd,
            cfg.n_embd,
            num_layers=cfg.n_layer,
            batch_first=True,
            dropout=cfg.dropout if cfg.n_layer > 1 else 0.0,
        )
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size)

    def init_weights(self, gen: torch.Generator) -> None:
        """Embedding N(0, 0.02); the LSTM and the head as PyTorch initialises them, from ``gen``.

        ``nn.LSTM`` draws every weight and bias from U(-1/sqrt(C), 1/sqrt(C)) with the
        global RNG; here the same distribution comes from ``gen``, as does the head's
        default ``nn.Linear`` initialisation U(-1/sqrt(C), 1/sqrt(C)).
        """
        bound = 1.0 / math.sqrt(self.cfg.n_embd)
        nn.init.normal_(self.wte.weight, 0.0, 0.02, generator=gen)
        for p in self.lstm.parameters():  # in place: the LSTM's flat weights stay valid
            nn.init.uniform_(p, -bound, bound, generator=gen)
        nn.init.uniform_(self.lm_head.weight, -bound, bound, generator=gen)
        nn.init.uniform_(self.lm_head.bias, -bound, bound, generator=gen)

    def forward(
        self, idx: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor:
        return self._run(idx, state)[0]

    def _run(
        self, idx: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Logits ``(B, T, V)`` and the final ``(h, c)``, from ``state`` (None: zeros)."""
        x, state = self.lstm(self.drop(self.wte(idx)), state)  # (B, T, C)
        return self.lm_head(self.drop(x)), state

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        n_tokens: int,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Append ``n_tokens`` sampled tokens to ``idx`` ``(B, T)``; returns ``(B, T + n)``.

        The prompt is read once, then each new token from the carried ``(h, c)`` state.
        """
        logits, state = self._run(idx, None)
        out = [idx]
        for _ in range(n_tokens):
            last = logits[:, -1, :].float() / temperature  # (B, V)
            if top_k is not None:
                kth = torch.topk(last, min(top_k, last.size(-1))).values[:, -1:]
                last = last.masked_fill(last < kth, float("-inf"))
            probs = F.softmax(last, dim=-1)
            nxt = torch.multinomial(probs.cpu(), 1, generator=generator).to(idx.device)
            out.append(nxt)
            logits, state = self._run(nxt, state)
        return torch.cat(out, dim=1)
