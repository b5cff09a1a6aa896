"""The scale operators of the latent-SDE model: a learned smoothing S, the restriction
T_r S to the macroscale grid and the prolongation T_p back, one depthwise kernel per
channel shared by all three (the paper's appendix G).

On a periodic grid of ``shape`` ((n,) or (ny, nx)), with coarsening ``stride`` s per
axis and an odd kernel of k points per axis (k = 6 s + 1 for KdV and Burgers, 4 s + 1
for the cylinder; initialised as a normalised Gaussian of std s / 2):

- ``smooth``:   (S y)_i = sum_m k_m y_{i+m-p} + b  (a circular cross-correlation, p = (k-1)/2);
- ``restrict``: zeta_j = (S y)_{s j}  (torch's strided convolution with the same kernel and bias);
- ``prolong``:  (T_p zeta)_i = s^d sum_j zeta_j k_{i-s j+p}  (the transposed strided convolution,
  scaled by s^d so that, with the initial Gaussian, T_p T_r keeps a constant field to about
  1%; no bias).

Our kernel sums to 1 (S keeps the field's units) and T_p carries the s^d; the paper's code
(one convolution kernel for the restriction and its transpose, no factor) holds the same
operators with the kernel and zeta scaled by s^(d/2).  Adam moves every parameter by about
its learning rate whatever the parameter's size, so ``lr_scale`` = s^(-d/2) is the factor on
the kernel's learning rate that makes its steps, relative to its size, the paper's (at
lr 1e-3 on our normalisation a Burgers kernel's peak, 0.0025, would move by 40% per step).

The kernels are as wide as the coarse cells are many, so they are applied as FFT
products over the whole grid, with batch-invariant transforms (1D along the last axis).
Inputs are (..., channels, *shape) and macroscale states (..., channels, *coarse shape).
"""
import torch
from torch import nn

from ..spectral import RowTransforms


def gaussian_kernel(points, std, dims):
    """A normalised Gaussian of ``points`` (odd) per axis and ``std`` grid cells, (points,)*dims."""
    x = torch.arange(points, dtype=torch.float64) - (points - 1) / 2
    line = torch.exp(-x ** 2 / (2 * std ** 2))
    kernel = line if dims == 1 else line[:, None] * line[None, :]
    return kernel / kernel.sum()


class ScaleOperators(nn.Module):
    """S, T_r S and T_p for ``channels`` fields on a periodic grid ``shape``."""

    def __init__(self, shape, channels, stride, points):
        super().__init__()
        self.shape, self.stride, self.points = tuple(shape), int(stride), int(points)
        self.dims = len(self.shape)
        if self.points % 2 == 0 or self.points > min(self.shape) or any(n % self.stride for n in self.shape):
            raise ValueError(f"the kernel's {self.points} points must be odd and at most the grid {self.shape}, "
                             f"and the stride {self.stride} must divide it")
        self.coarse_shape = tuple(n // self.stride for n in self.shape)
        self.lr_scale = float(self.stride) ** (-self.dims / 2)
        kernel = gaussian_kernel(self.points, self.stride / 2, self.dims)
        self.kernel = nn.Parameter(kernel.expand((channels,) + kernel.shape).clone())
        self.bias = nn.Parameter(torch.zeros(channels, dtype=torch.float64))
        self.transforms = RowTransforms(self.shape) if self.dims == 2 else None

    def _forward(self, f):
        return self.transforms.spectral(f) if self.dims == 2 else torch.fft.rfft(f)

    def _inverse(self, f_hat):
        return self.transforms.real(f_hat) if self.dims == 2 else torch.fft.irfft(f_hat, n=self.shape[0])

    def _kernel_spectrum(self):
        """Spectrum (channels, *spectral shape) of the kernel centred on the grid's first point."""
        pad = [0, self.shape[-1] - self.points] + ([0, self.shape[0] - self.points] if self.dims == 2 else [])
        placed = nn.functional.pad(self.kernel, pad)
        half = (self.points - 1) // 2
        placed = torch.roll(placed, shifts=(-half,) * self.dims, dims=tuple(range(-self.dims, 0)))
        return self._forward(placed)

    def _bias(self):
        return self.bias.reshape((-1,) + (1,) * self.dims)

    def smooth(self, y):
        """S y, of ``y``'s shape (..., channels, *shape)."""
        return self._inverse(self._forward(y) * self._kernel_spectrum().conj()) + self._bias()

    def restrict(self, y):
        """zeta = T_r S y, (..., channels, *coarse shape)."""
        s = self.stride
        smooth = self.smooth(y)
        return smooth[..., ::s] if self.dims == 1 else smooth[..., ::s, ::s]

    def prolong(self, zeta):
        """T_p zeta, (..., channels, *shape)."""
        s = self.stride
        fine = zeta.new_zeros(zeta.shape[:-self.dims] + self.shape)
        if self.dims == 1:
            fine[..., ::s] = zeta
        else:
            fine[..., ::s, ::s] = zeta
        return self._inverse(self._forward(fine) * self._kernel_spectrum()) * s ** self.dims

    def extra_repr(self):
        return f"shape={self.shape}, stride={self.stride}, points={self.points}, coarse={self.coarse_shape}"

