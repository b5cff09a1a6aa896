"""The residual UNet backbone of the SNS family: circular padding (the periodic box),
GELU, two residual blocks per level, one level per width.

Fields are (B, C, n, n) with n divisible by 2^(levels - 1); level l works at n / 2^l
with ``widths[l]`` channels.  :data:`PAPER` has the paper's widths, 128 / 256 / 512 at
64² / 32² / 16²: 19.2 M parameters in this layout (3 in, 2 out channels), where the paper
reports 74 M for its own, whose blocks it does not detail.  :data:`CPU`, the default, has
32 / 64 / 128: 1.2 M.  Down: the level's blocks, then a stride-2 circular 3x3
convolution; the bottleneck's blocks; up: nearest-neighbour 2x upsampling, a 3x3
convolution, concatenation with the level's skip, the blocks.

:meth:`UNet.encode` returns the skips and the bottleneck (B, widths[-1], n_min, n_min),
which the noise-level classifier heads of Thermalizer and SNS read;
:meth:`UNet.decode` takes per-sample conditioning ``cond`` (B, cond_dim) or None: every
decoder block adds a per-channel bias, a linear map of ``cond`` (SNS: an MLP of the
heads' probabilities; ACDM and Thermalizer: a noise-level embedding), after its first
convolution.  With circular padding the network commutes with periodic shifts by
multiples of 2^(levels - 1) points.
"""
from typing import List, Optional, Tuple

import torch
from torch import nn
from torch.nn import functional as F

CPU = {"widths": (32, 64, 128), "blocks": 2}
PAPER = {"widths": (128, 256, 512), "blocks": 2}


def circular_conv(c_in, c_out, stride=1):
    """3x3 convolution with circular padding."""
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, padding_mode="circular")


class ResidualBlock(nn.Module):
    """x + conv(GELU(conv(GELU(x)) + bias(cond))), a 1x1 skip where channels change;
    GroupNorm before each GELU."""

    def __init__(self, c_in, c_out, cond_dim=0):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(8, c_in), c_in)
        self.conv1 = circular_conv(c_in, c_out)
        self.norm2 = nn.GroupNorm(min(8, c_out), c_out)
        self.conv2 = circular_conv(c_out, c_out)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.bias = nn.Linear(cond_dim, c_out) if cond_dim else None

    def forward(self, x: torch.Tensor, cond: Optional[torch.Tensor]) -> torch.Tensor:
        h = self.conv1(F.gelu(self.norm1(x)))
        if self.bias is not None and cond is not None:
            h = h + self.bias(cond)[:, :, None, None]
        return self.skip(x) + self.conv2(F.gelu(self.norm2(h)))


class DownLevel(nn.Module):
    """One level above the bottleneck: its blocks, then the stride-2 convolution to the
    next width; returns (the skip at this level, the downsampled features)."""

    def __init__(self, width, next_width, blocks):
        super().__init__()
        self.blocks = nn.ModuleList([ResidualBlock(width, width) for _ in range(blocks)])
        self.down = circular_conv(width, next_width, stride=2)

    def forward(self, h: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        for block in self.blocks:
            h = block(h, None)
        return h, self.down(h)


class UpLevel(nn.Module):
    """One decoder level: upsample from ``coarse_width``, concatenate the skip, the blocks
    (each adding its bias of ``cond``)."""

    def __init__(self, coarse_width, width, blocks, cond_dim):
        super().__init__()
        self.up = circular_conv(coarse_width, width)
        self.blocks = nn.ModuleList([ResidualBlock(2 * width if k == 0 else width, width, cond_dim)
                                     for k in range(blocks)])

    def forward(self, h: torch.Tensor, skip: torch.Tensor, cond: Optional[torch.Tensor]) -> torch.Tensor:
        h = torch.cat([self.up(F.interpolate(h, scale_factor=2.0, mode="nearest")), skip], dim=1)
        for block in self.blocks:
            h = block(h, cond)
        return h


class UNet(nn.Module):
    """The backbone: ``in_channels`` -> ``out_channels`` at the input's resolution."""

    def __init__(self, in_channels, out_channels, widths=CPU["widths"], blocks=CPU["blocks"], cond_dim=0):
        super().__init__()
        widths = list(widths)
        self.cond_dim = int(cond_dim)
        self.stem = circular_conv(in_channels, widths[0])
        self.down = nn.ModuleList([DownLevel(widths[k], widths[k + 1], blocks) for k in range(len(widths) - 1)])
        self.middle = nn.ModuleList([ResidualBlock(widths[-1], widths[-1]) for _ in range(blocks)])
        self.up = nn.ModuleList([UpLevel(widths[k + 1], widths[k], blocks, cond_dim)
                                 for k in range(len(widths) - 2, -1, -1)])
        self.head = nn.Sequential(nn.GroupNorm(min(8, widths[0]), widths[0]), nn.GELU(),
                                  circular_conv(widths[0], out_channels))

    def encode(self, x: torch.Tensor) -> Tuple[List[torch.Tensor], torch.Tensor]:
        """(skips of the levels above the bottleneck, finest first; bottleneck features)."""
        h = self.stem(x)
        skips: List[torch.Tensor] = []
        for level in self.down:
            skip, h = level(h)
            skips.append(skip)
        for block in self.middle:
            h = block(h, None)
        return skips, h

    def decode(self, skips: List[torch.Tensor], h: torch.Tensor, cond: Optional[torch.Tensor]) -> torch.Tensor:
        """The output (B, out_channels, n, n) from :meth:`encode`'s result."""
        for k, level in enumerate(self.up):
            h = level(h, skips[len(skips) - 1 - k], cond)
        return self.head(h)

    def forward(self, x: torch.Tensor, cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        skips, h = self.encode(x)
        return self.decode(skips, h, cond)


def parameter_count(module):
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
