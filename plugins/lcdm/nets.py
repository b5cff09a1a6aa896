"""Network blocks of the L-CDM closure: periodic conv autoencoders and two-branch FNO score models.

All fields are periodic, so every convolution pads circularly.  Shapes are
``(B, C, ny, nx)`` float32 throughout.  Inference is batch-invariant on the CPU: a
sample's output bits do not depend on the other samples in its batch.

- :class:`Encoder` / :class:`Decoder`: 64^2 <-> 16^2 with one latent channel:
  residual blocks (GroupNorm, SiLU, 3x3 conv), space-to-depth and stride-2
  convolutions down, convolutions and depth-to-space up, and one 4-head
  self-attention block at the 16^2 bottleneck.  Most of the work is at 32^2 and
  16^2 (the 64^2 level has ``widths[0]`` channels and one conv).
  The H encoder returns a mean and a log-variance (``latent_channels = 2``).
- :class:`ScoreFNO`: the conditional score ``s(z, tau | c)`` as two Fourier-neural-
  operator branches, one for the noisy ``z`` (with grid coordinates and Gaussian
  Fourier features of the diffusion time ``tau``), one for the condition ``c`` (with
  grid coordinates), each a 1x1 lift and four Fourier layers, merged by channel
  concatenation and two 1x1 convolutions.  The network estimates the clean latent,
  and the score of the VE SDE follows from it (:class:`ScoreFNO`).
"""
import math

import torch
from torch import nn
from torch.nn import functional as F


def groups(channels):
    """GroupNorm groups: 8, or fewer for narrow layers."""
    return math.gcd(8, channels)


INFERENCE_CHUNK = 8  # samples per oneDNN convolution call in CPU inference


class PeriodicConv(nn.Module):
    """A k x k convolution with circular padding, (B, C_in, ny, nx) -> (B, C_out, ny/stride, nx/stride).

    In training, and on CUDA, it is one ``F.conv2d`` call.  In inference on the CPU
    the batch is cut into chunks of ``INFERENCE_CHUNK`` samples (the last one padded
    with zeros), one call each: oneDNN picks its kernels by the batch size, so a
    sample's bits would otherwise change with the batch, and the host's contract is
    that batching never changes a member (DESIGN.md section 4).  With a fixed chunk
    every sample goes through the same kernel whatever the batch.
    """

    def __init__(self, cin, cout, k=3, stride=1):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.stride, self.pad = stride, (k - 1) // 2
        self.chunk = INFERENCE_CHUNK

    def forward(self, x):
        if self.pad:
            x = F.pad(x, (self.pad, self.pad, self.pad, self.pad), mode="circular")
        if self.training or x.is_cuda:
            return F.conv2d(x, self.weight, self.bias, self.stride)
        rows = x.shape[0]
        missing = -rows % self.chunk
        if missing:
            x = torch.cat([x, torch.zeros([missing, x.shape[1], x.shape[2], x.shape[3]], dtype=x.dtype)])
        chunks = [F.conv2d(chunk, self.weight, self.bias, self.stride) for chunk in x.split(self.chunk)]
        return torch.cat(chunks)[:rows]


class ResBlock(nn.Module):
    """x + conv(SiLU(GN(conv(SiLU(GN(x))))))."""

    def __init__(self, channels):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups(channels), channels), PeriodicConv(channels, channels)
        self.norm2, self.conv2 = nn.GroupNorm(groups(channels), channels), PeriodicConv(channels, channels)

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        return x + self.conv2(F.silu(self.norm2(h)))


class SelfAttention(nn.Module):
    """Multi-head self-attention over the grid points, residual (B, C, ny, nx)."""

    def __init__(self, channels, heads=4):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups(channels), channels)
        self.qkv = PeriodicConv(channels, 3 * channels, k=1)
        self.out = PeriodicConv(channels, channels, k=1)

    def forward(self, x):
        b, c, ny, nx = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, ny * nx)
        q, k, v = qkv.transpose(-1, -2).contiguous().unbind(1)  # each (B, heads, points, C/heads)
        h = F.scaled_dot_product_attention(q, k, v)
        return x + self.out(h.transpose(-1, -2).reshape(b, c, ny, nx))


class Encoder(nn.Module):
    """(B, 1, 64, 64) -> (B, latent_channels, 16, 16).

    Space-to-depth to 32^2 (4 channels), a conv to ``widths[1]`` channels and a
    residual block at 32^2, a stride-2 conv to ``widths[2]`` channels at 16^2, then
    residual block, self-attention, residual block, and a conv to the latent.
    """

    def __init__(self, widths=(4, 16, 32), latent_channels=1):
        super().__init__()
        _, c1, c2 = widths
        self.layers = nn.Sequential(
            nn.PixelUnshuffle(2), PeriodicConv(4, c1), ResBlock(c1), PeriodicConv(c1, c2, stride=2),
            ResBlock(c2), SelfAttention(c2), ResBlock(c2),
            nn.GroupNorm(groups(c2), c2), nn.SiLU(), PeriodicConv(c2, latent_channels))

    def forward(self, x):
        return self.layers(x)


class Decoder(nn.Module):
    """(B, 1, 16, 16) -> (B, 1, 64, 64), the mirror of :class:`Encoder`: upsampling by
    convs to 4x the channels followed by depth-to-space, and a last conv at 64^2 on
    ``widths[0]`` channels."""

    def __init__(self, widths=(4, 16, 32)):
        super().__init__()
        c0, c1, c2 = widths
        self.layers = nn.Sequential(
            PeriodicConv(1, c2), ResBlock(c2), SelfAttention(c2), ResBlock(c2),
            PeriodicConv(c2, 4 * c1), nn.PixelShuffle(2), ResBlock(c1),
            nn.GroupNorm(groups(c1), c1), nn.SiLU(), PeriodicConv(c1, 4 * c0), nn.PixelShuffle(2), nn.SiLU(),
            PeriodicConv(c0, 1))

    def forward(self, z):
        return self.layers(z)


class SpectralConv(nn.Module):
    """Fourier layer kernel: multiply the lowest ``modes`` Fourier modes by learned
    complex (C_in, C_out) matrices, zero the rest (Li et al.'s FNO).  The mixing is an
    elementwise product summed over C_in (batch-invariant, unlike a batched GEMM)."""

    def __init__(self, cin, cout, modes):
        super().__init__()
        self.modes = modes
        scale = 1.0 / (cin * cout)
        self.weight = nn.Parameter(scale * torch.randn(cin, cout, 2 * modes, modes, 2))

    def forward(self, x):
        b, _, ny, nx = x.shape
        m = self.modes
        x_hat = torch.fft.rfft2(x)
        low = torch.cat([x_hat[:, :, :m, :m], x_hat[:, :, ny - m:, :m]], dim=2)
        mixed = (low[:, :, None] * torch.view_as_complex(self.weight)[None]).sum(1)
        out = torch.zeros(b, mixed.shape[1], ny, nx // 2 + 1, dtype=mixed.dtype, device=x.device)
        out[:, :, :m, :m] = mixed[:, :, :m]
        out[:, :, ny - m:, :m] = mixed[:, :, m:]
        return torch.fft.irfft2(out, s=(ny, nx))


class FourierLayer(nn.Module):
    """GELU(spectral(x) + 1x1 conv(x)); ``last`` drops the activation."""

    def __init__(self, width, modes, last=False):
        super().__init__()
        self.spectral = SpectralConv(width, width, modes)
        self.pointwise = PeriodicConv(width, width, k=1)
        self.last = last

    def forward(self, x):
        h = self.spectral(x) + self.pointwise(x)
        return h if self.last else F.gelu(h)


def grid_coordinates(ny, nx):
    """(1, 2, ny, nx): x and y of the grid points on the unit square."""
    y, x = torch.meshgrid(torch.arange(ny) / ny, torch.arange(nx) / nx, indexing="ij")
    return torch.stack([x, y])[None].float()


class FNOBranch(nn.Module):
    """1x1 lift of (field, coordinates) then four Fourier layers; an optional per-sample
    bias (B, width, 1, 1) (the time embedding) is added after the lift."""

    def __init__(self, width, modes, layers=4):
        super().__init__()
        self.width = width
        self.lift = PeriodicConv(3, width, k=1)
        self.layers = nn.Sequential(*[FourierLayer(width, modes, last=i == layers - 1) for i in range(layers)])

    def forward(self, field, coords, bias):
        h = self.lift(torch.cat([field, coords.expand(field.shape[0], -1, -1, -1)], dim=1))
        return self.layers(h + bias)


class ScoreFNO(nn.Module):
    """Conditional score on an (n, n) grid: ``forward(z, tau, std, cond_features)``.

    The network is a denoiser: :meth:`denoise` estimates the clean ``z_0`` from the
    noisy ``z_tau``, and the score is ``(D - z) / std(tau)^2`` (Tweedie's formula).
    For a closure that is nearly a function of its condition, the denoiser's target
    hardly depends on ``z`` or ``tau``, which is easier to learn than the noise.
    ``condition(c)`` computes the condition branch once per sample (it does not depend
    on ``z`` or ``tau``).  ``z``, ``c``: (B, 1, n, n); ``tau``, ``std``: (B,) or (1,) (one
    time for the batch).  The time embedding is an MLP of Gaussian Fourier features
    ``sin, cos(2 pi f tau)``, ``f ~ N(0, fourier_scale^2)``.
    """

    def __init__(self, n, width=24, modes=4, features=16, fourier_scale=16.0):
        super().__init__()
        self.register_buffer("coords", grid_coordinates(n, n))
        self.register_buffer("frequencies", fourier_scale * torch.randn(features))
        self.time = nn.Sequential(nn.Linear(2 * features, width), nn.SiLU(), nn.Linear(width, width))
        self.noisy = FNOBranch(width, modes)
        self.cond = FNOBranch(width, modes)
        self.merge = nn.Sequential(PeriodicConv(2 * width, 2 * width, k=1), nn.GELU(), PeriodicConv(2 * width, 1, k=1))

    def condition(self, c):
        return self.cond(c, self.coords, torch.zeros(c.shape[0], self.cond.width, 1, 1, device=c.device))

    def denoise(self, z, tau, cond_features):
        """The denoised estimate of z_0, (B, 1, n, n)."""
        angles = 2 * math.pi * tau[:, None] * self.frequencies[None, :]
        embedding = self.time(torch.cat([torch.sin(angles), torch.cos(angles)], dim=1))[:, :, None, None]
        h = self.noisy(z, self.coords, embedding)
        return self.merge(torch.cat([h, cond_features], dim=1))

    def forward(self, z, tau, std, cond_features):
        return (self.denoise(z, tau, cond_features) - z) / (std**2)[:, None, None, None]
