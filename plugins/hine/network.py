"""The backbone of the HINE family: a UNet with depthwise Fourier layers, an attention
bottleneck, the latents injected into its encoder and heads for the predicted latents
(after the paper's ADM-style UNet, at CPU scale).

Fields are (B, C, n, n) normalised (the vorticity divided by 10, the paper's scaling).
Level l works at n / 2^l with ``widths[l]`` channels (CPU default 8 / 16 / 32 / 48 at
64² / 32² / 16² / 8²; the paper's 256² network has 16 ... 128 down to 8²).  Every
residual block takes the sample's case embedding (A, B, C of the start-up, or one case
for the models without one) as a per-channel scale and shift after its first convolution,
and holds a depthwise Fourier layer: per channel, the lowest ``modes`` Fourier
coefficients of each axis multiplied by learned complex weights.  Latents: z1 (B, 1, n/2, n/2) is added through a
1x1 convolution to the encoder's input of level 1, z2 (B, 1, n/8, n/8) to the
bottleneck's input.  Heads: the full-resolution output (from the decoder's finest
level), the z1 head at n/2 (the decoder's level 1), the z2 head at n/8 (the bottleneck).
Circular padding everywhere: the network commutes with periodic shifts by multiples of 8
points when its Fourier layers do (shifts are phases, which the learned weights leave).
"""
from typing import Tuple

import torch
from torch import nn
from torch.nn import functional as F

from ..sns.unet import circular_conv

CPU = {"widths": (8, 16, 32, 48), "modes": 8, "embedding": 32}
PAPER = {"widths": (32, 64, 128, 128), "modes": 16, "embedding": 128}


class FourierLayer(nn.Module):
    """Depthwise spectral convolution on an n-grid: the coefficients |k_y| < m, 0 <= k_x < m
    (m = min(modes, n/2)) of each channel times learned complex weights, the rest dropped.
    The truncated transforms are matrix products with the DFT's rows (2 m - 1 + m of
    them), cheaper than full FFTs for the few modes kept."""

    def __init__(self, channels, n, modes):
        super().__init__()
        m = min(int(modes), n // 2)
        ky = torch.cat([torch.arange(m), torch.arange(-m + 1, 0)]).double()
        kx = torch.arange(m).double()
        points = torch.arange(n).double()
        phase_x = 2 * torch.pi * points[:, None] * kx[None, :] / n  # (n, m)
        phase_y = 2 * torch.pi * ky[:, None] * points[None, :] / n  # (2m - 1, n)
        weight_x = torch.where(kx == 0, 1.0, 2.0)  # the half spectrum's conjugate columns
        self.register_buffer("forward_x", torch.polar(torch.ones_like(phase_x), -phase_x).to(torch.complex64))
        self.register_buffer("forward_y", torch.polar(torch.ones_like(phase_y), -phase_y).to(torch.complex64))
        self.register_buffer("inverse_x", (torch.polar(torch.ones_like(phase_x), phase_x).T * weight_x[:, None]
                                           / n).to(torch.complex64))
        self.register_buffer("inverse_y", (torch.polar(torch.ones_like(phase_y), phase_y).T / n).to(torch.complex64))
        self.weight = nn.Parameter(torch.randn(channels, 2 * m - 1, m, 2) / channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = torch.complex128 if x.dtype == torch.float64 else torch.complex64
        x_hat = self.forward_y.to(dtype) @ (x.to(dtype) @ self.forward_x.to(dtype))
        out = x_hat * torch.view_as_complex(self.weight).to(dtype)
        return (self.inverse_y.to(dtype) @ out @ self.inverse_x.to(dtype)).real


class Block(nn.Module):
    """x + conv(GELU(norm(FiLM(conv(GELU(norm x))) + Fourier(x)))), a 1x1 skip where the
    channels change; FiLM: (1 + scale) h + shift of the case embedding."""

    def __init__(self, c_in, c_out, n, modes, embedding):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(8, c_in), c_in)
        self.conv1 = circular_conv(c_in, c_out)
        self.fourier = FourierLayer(c_in, n, modes)
        self.mix = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.film = nn.Linear(embedding, 2 * c_out)
        self.norm2 = nn.GroupNorm(min(8, c_out), c_out)
        self.conv2 = circular_conv(c_out, c_out)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.gelu(self.norm1(x)))
        scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)
        h = h * (1.0 + scale) + shift + self.mix(self.fourier(x))
        return self.skip(x) + self.conv2(F.gelu(self.norm2(h)))


class Attention(nn.Module):
    """Single-head self-attention over the bottleneck's points, residual."""

    def __init__(self, channels):
        super().__init__()
        self.norm = nn.GroupNorm(min(8, channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, ny, nx = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, ny * nx).unbind(1)
        weights = torch.softmax(torch.einsum("bci,bcj->bij", q, k) / c ** 0.5, dim=-1)
        return x + self.out(torch.einsum("bij,bcj->bci", weights, v).reshape(b, c, ny, nx))


class HierarchicalUNet(nn.Module):
    """``forward(x, z1, z2, case)`` -> (out (B, out_channels, n, n), z1 head (B, 1, n/2,
    n/2), z2 head (B, 1, n/8, n/8)); ``x`` (B, in_channels, n, n), ``case`` (B,) int64."""

    def __init__(self, in_channels, out_channels, cases, n=64, widths=CPU["widths"], modes=CPU["modes"],
                 embedding=CPU["embedding"]):
        super().__init__()
        w = list(widths)
        if len(w) != 4 or n % 8:
            raise ValueError(f"widths: expected 4 (n, n/2, n/4, n/8) and n a multiple of 8, got {w}, {n}")
        sizes = [n, n // 2, n // 4, n // 8]
        self.case_embedding = nn.Embedding(cases, embedding)
        self.stem = circular_conv(in_channels, w[0])
        self.enc0, self.enc1, self.enc2, self.enc3 = (Block(w[k], w[k], sizes[k], modes, embedding) for k in range(4))
        self.down0, self.down1, self.down2 = (circular_conv(w[k], w[k + 1], stride=2) for k in range(3))
        self.inject1 = nn.Conv2d(1, w[1], 1)
        self.inject2 = nn.Conv2d(1, w[3], 1)
        self.attention = Attention(w[3])
        self.middle = Block(w[3], w[3], sizes[3], modes, embedding)
        self.up2, self.up1, self.up0 = (circular_conv(w[k + 1], w[k]) for k in (2, 1, 0))
        self.dec2, self.dec1, self.dec0 = (Block(2 * w[k], w[k], sizes[k], modes, embedding) for k in (2, 1, 0))
        self.head = nn.Sequential(nn.GroupNorm(min(8, w[0]), w[0]), nn.GELU(), circular_conv(w[0], out_channels))
        self.head1 = nn.Sequential(nn.GroupNorm(min(8, w[1]), w[1]), nn.GELU(), circular_conv(w[1], 1))
        self.head2 = nn.Sequential(nn.GroupNorm(min(8, w[3]), w[3]), nn.GELU(), circular_conv(w[3], 1))

    def forward(self, x: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor,
                case: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        emb = self.case_embedding(case)
        skip0 = self.enc0(self.stem(x), emb)
        skip1 = self.enc1(self.down0(skip0) + self.inject1(z1), emb)
        skip2 = self.enc2(self.down1(skip1), emb)
        h = self.enc3(self.down2(skip2) + self.inject2(z2), emb)
        h = self.middle(self.attention(h), emb)
        z2_out = self.head2(h)
        h = self.dec2(torch.cat([self.up2(upsample(h)), skip2], dim=1), emb)
        h = self.dec1(torch.cat([self.up1(upsample(h)), skip1], dim=1), emb)
        z1_out = self.head1(h)
        h = self.dec0(torch.cat([self.up0(upsample(h)), skip0], dim=1), emb)
        return self.head(h), z1_out, z2_out


def upsample(h: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour 2x upsampling."""
    return F.interpolate(h, scale_factor=2.0, mode="nearest")
