"""Pretrain the byte-level GPT base of ``LRSchedule-LoRA-v0`` once, into the user cache.

The env builds the base itself on first use; this script does it ahead of time (and
resumes an interrupted build from its last checkpoint). The defaults are the env's
base: about 3 minutes on 2 CPU cores::

    python scripts/pretrain_base.py
    python scripts/pretrain_base.py --steps 3000 --n-embd 192 --n-head 6

A base with other options gets another file; the env uses it when given the same
options under their env names (``gym.make("LRSchedule-LoRA-v0", pretrain_steps=3000, n_embd=192, n_head=6)``;
``--batch-size``, ``--lr`` are ``pretrain_batch_size``, ``pretrain_lr`` there).
"""

from __future__ import annotations

from dataclasses import dataclass

from common.cli import ArgumentError, parse
from trainees.models.gpt import GPTModelConfig
from trainees.pretrained import PretrainConfig, PretrainedBase, pretrain_base


@dataclass(frozen=True)
class Args:
    """Pretrain a byte-level GPT on the Python standard library's sources.

    Attributes:
        n_layer: transformer blocks.
        n_head: attention heads (n_embd must be divisible by it).
        n_embd: width.
        block_size: context length in bytes.
        corpus_bytes: bytes of the standard library's sources (95 % train, 5 % held out).
        steps: optimizer steps.
        batch_size: windows per step.
        lr: peak learning rate (warm-up, then cosine decay to 10 %).
        checkpoint_every: steps between checkpoints of the build.
        device: cpu, cuda, cuda:N; None: CUDA when available.
        cache_dir: folder of base files (None: the user cache's bases/).
    """

    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 64
    corpus_bytes: int = 2_000_000
    steps: int = 1500
    batch_size: int = 16
    lr: float = 3e-3
    checkpoint_every: int = 200
    device: str | None = None
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        try:
            self.config()
        except ValueError as e:
            raise ArgumentError(str(e)) from e
        if self.checkpoint_every < 1:
            raise ArgumentError(f"--checkpoint-every {self.checkpoint_every} must be >= 1")

    def config(self) -> PretrainConfig:
        """The base these arguments describe."""
        model = GPTModelConfig(
            vocab_size=256,
            block_size=self.block_size,
            n_layer=self.n_layer,
            n_head=self.n_head,
            n_embd=self.n_embd,
        )
        return PretrainConfig(
            model=model,
            corpus_bytes=self.corpus_bytes,
            steps=self.steps,
            batch_size=self.batch_size,
            lr=self.lr,
        )


def main(args: Args) -> PretrainedBase:
    """Build (or find) the base; print where it is and its held-out loss."""
    base = pretrain_base(
        args.config(),
        cache_dir=args.cache_dir,
        device=args.device,
        checkpoint_every=args.checkpoint_every,
    )
    how = f"pretrained in {base.train_seconds:.0f} s" if base.built else "found in the cache"
    print(f"base {how}: held-out loss {base.heldout_loss:.4f} nats/byte; file {base.path}")
    return base


if __name__ == "__main__":
    main(parse(Args))
