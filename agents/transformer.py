"""A transformer features extractor for SB3 over LRScheduleEnv's observation window."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from envs.observation import MASK_COL as MASK
from envs.observation import REMAINING_COL as REMAINING

LOG_EPS = 1e-3  # log-time features stay finite at r = 0 and r = 1


class WindowTransformer(BaseFeaturesExtractor):
    """Observation window ``(B, window, n_features)`` -> features ``(B, features_dim)``.

    The window is cut into patches of ``patch_size`` consecutive rows (oldest rows
    zero-padded at the front); each patch is one token: a linear embedding plus a
    learned position embedding. A pre-LayerNorm transformer encoder (``n_layers``
    layers, ``n_heads`` heads) mixes the tokens; patches that are all padding (mask
    column 0) are masked out as keys. Features are a projection of the mean of the
    valid tokens, the newest token, the newest row itself (the current training
    state: progress, losses, LR), and log-time features ``log(r + eps)`` and
    ``log(1 - r + eps)`` of its remaining fraction ``r``: schedules change fastest in log
    space near the start (warm-up) and the end (decay to a small floor), where a linear
    function of ``r`` would need a very steep fit.

    Use as ``policy_kwargs=dict(features_extractor_class=WindowTransformer)``.
    """

    def __init__(
        self,
        observation_space: spaces.Box,
        features_dim: int = 64,
        *,
        patch_size: int = 16,
        d_model: int = 64,
        n_layers: int = 4,
        n_heads: int = 2,
    ) -> None:
        if len(observation_space.shape) != 2:
            raise ValueError(
                f"WindowTransformer needs a (window, n_features) Box, got {observation_space.shape}"
            )
        if d_model % n_heads != 0:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        super().__init__(observation_space, features_dim)
        window, n_features = observation_space.shape
        self.patch_size = patch_size
        self.n_patches = math.ceil(window / patch_size)
        self.pad = self.n_patches * patch_size - window
        self.embed = nn.Linear(patch_size * n_features, d_model)
        self.pos = nn.Parameter(torch.randn(self.n_patches, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d_model,
            n_heads,
            4 * d_model,
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Sequential(nn.Linear(2 * d_model + n_features + 2, features_dim), nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        obs = F.pad(observations, (0, 0, self.pad, 0))  # (B, P * patch, F), padding first
        B = obs.shape[0]
        patches = obs.reshape(B, self.n_patches, -1)  # (B, P, patch * F)
        valid = obs[..., MASK].reshape(B, self.n_patches, self.patch_size).amax(-1) > 0.5
        valid[:, -1] = True  # the newest patch always counts (avoids an all-masked row)
        x = self.embed(patches) + self.pos  # (B, P, d_model)
        x = self.norm(self.encoder(x, src_key_padding_mask=~valid))
        w = valid.unsqueeze(-1).to(x.dtype)
        mean = (x * w).sum(1) / w.sum(1)  # (B, d_model)
        newest = observations[:, -1]
        r = newest[:, REMAINING : REMAINING + 1]
        log_time = torch.cat([torch.log(r + LOG_EPS), torch.log(1.0 - r + LOG_EPS)], dim=-1)
        return self.head(torch.cat([mean, x[:, -1], newest, log_time], dim=-1))
