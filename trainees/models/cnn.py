"""A small plain CNN: 3x3 convolutions and 2x2 max-pools, then a global average pool.

No residual connections (ResNet-18 is a held-out architecture): block ``i`` is a 3x3
convolution to ``channels · 2^i`` channels (padding 1), an optional BatchNorm, the
activation and a 2x2 max-pool, so ``depth`` blocks halve the image sides ``depth`` times.
A linear layer maps the pooled channels to the classes.
"""

from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    """``(B, in_channels, H, W)`` images -> ``(B, num_classes)`` logits.

    Args:
        in_channels: image channels.
        num_classes: classes.
        channels: the first block's channels; block ``i`` has ``channels · 2^i``.
        depth: conv blocks (each halves the image sides).
        activation: the activation module's class (``nn.ReLU``, ...).
        batch_norm: a BatchNorm after each convolution (the convolution then has no bias).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        channels: int,
        depth: int,
        activation: type[nn.Module],
        batch_norm: bool,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_channels
        for i in range(depth):
            out = channels * 2**i
            layers.append(nn.Conv2d(width, out, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out))
            layers += [activation(), nn.MaxPool2d(2)]
            width = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))
