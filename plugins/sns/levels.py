"""Noise levels in and out of the SNS family's networks.

- :class:`LevelEmbedding`: a level s (B,) as a conditioning vector (B, dim) for the
  UNet's decoder biases: sinusoidal features of s (periods 2 .. 2 * 10^4 levels, as in
  DDPM's timestep embedding), then Linear-GELU-Linear (Thermalizer, ACDM).
- :class:`LevelHead`: a classifier of the noise level on the UNet's bottleneck (B, C, m,
  m): its spatial mean, then a linear map to S logits, logit j for level j + 1 (Thermalizer,
  and SNS's two heads).
- :func:`predicted_level`: the most probable level of a head's logits, at most ``cap``.
"""
import math

import torch
from torch import nn
from torch.nn import functional as F


class LevelEmbedding(nn.Module):
    def __init__(self, dim, features=64):
        super().__init__()
        half = features // 2
        self.register_buffer("frequencies", torch.exp(-math.log(1e4) * torch.arange(half) / half))
        self.mlp = nn.Sequential(nn.Linear(2 * half, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        """(B, dim) of integer levels ``s`` (B,)."""
        phase = s.to(self.frequencies.dtype)[:, None] * self.frequencies[None, :]
        return self.mlp(torch.cat([torch.sin(phase), torch.cos(phase)], 1))


class LevelHead(nn.Module):
    def __init__(self, channels, levels):
        super().__init__()
        self.linear = nn.Linear(channels, levels)

    def forward(self, bottleneck: torch.Tensor) -> torch.Tensor:
        """Logits (B, S) of the levels 1 .. S."""
        return self.linear(bottleneck.mean(dim=(-2, -1)))


def level_loss(logits, s):
    """Cross-entropy of the levels ``s`` (B,) in 1 .. S under ``logits`` (B, S)."""
    return F.cross_entropy(logits, s - 1)


def predicted_level(logits: torch.Tensor, cap: int) -> torch.Tensor:
    """The argmax level (B,) int64 in 1 .. min(S, cap) of ``logits`` (B, S)."""
    return (torch.argmax(logits, dim=1) + 1).clamp(max=cap)
