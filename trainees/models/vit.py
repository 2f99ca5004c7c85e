"""A small Vision Transformer (Dosovitskiy et al., 2021) for small grey-scale images.

Non-overlapping ``patch`` x ``patch`` patches embedded by a convolution of that kernel
and stride, a learned class token and learned position embeddings, ``depth``
pre-LayerNorm blocks of (non-causal) multi-head self-attention and a GELU MLP, a final
LayerNorm and a linear head on the class token. Shapes: B batch, N patches, D width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainees.torch_trainee import default_init_


class SelfAttention(nn.Module):
    """Multi-head self-attention over all tokens (no mask)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        # (B, N, 3D) -> three (B, heads, N, D / heads)
        q, k, v = self.qkv(x).split(D, dim=2)
        q, k, v = (t.view(B, N, self.heads, D // self.heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(B, N, D))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads)
        self.ln2 = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, mlp_ratio * dim)
        self.fc_out = nn.Linear(mlp_ratio * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.fc_out(F.gelu(self.fc(self.ln2(x))))


class ViT(nn.Module):
    """``(B, in_ch, H, W)`` images -> ``(B, num_classes)`` logits.

    Raises:
        ValueError: a size or count below 1, ``dim`` not divisible by ``heads``, or an image
            side not divisible by ``patch``, naming the values.
    """

    def __init__(
        self,
        in_ch: int,
        image_size: tuple[int, int],
        num_classes: int,
        patch: int = 4,
        dim: int = 64,
        depth: int = 2,
        heads: int = 4,
        mlp_ratio: int = 4,
    ) -> None:
        super().__init__()
        h, w = image_size
        sizes = dict(in_ch=in_ch, num_classes=num_classes, patch=patch, dim=dim, depth=depth)
        for name, value in (sizes | dict(heads=heads, mlp_ratio=mlp_ratio, h=h, w=w)).items():
            if value < 1:
                raise ValueError(f"{name}={value!r} must be an integer >= 1")
        if h % patch or w % patch:
            raise ValueError(f"image size {h}x{w} is not divisible by patch={patch}")
        if dim % heads:
            raise ValueError(f"dim={dim} must be divisible by heads={heads}")
        self.n_patches = (h // patch) * (w // patch)
        self.patch_embed = nn.Conv2d(in_ch, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.empty(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.empty(1, self.n_patches + 1, dim))
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio) for _ in range(depth))
        self.ln_f = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def init_weights(self, gen: torch.Generator) -> None:
        """The layers as ``default_init_`` does; class token and positions N(0, 0.02); from ``gen``."""
        for child in self.children():
            default_init_(child, gen)
        nn.init.normal_(self.cls_token, 0.0, 0.02, generator=gen)
        nn.init.normal_(self.pos_embed, 0.0, 0.02, generator=gen)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, N, D)
        x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], dim=1)
        x = x + self.pos_embed  # (B, N + 1, D)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x[:, 0]))
