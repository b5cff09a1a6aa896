"""Eddy-viscosity closures for 2D vorticity-form Navier-Stokes, as torch modules.

The closures are pointwise on any grid: the host hands them derivatives of its fields
in physical space and takes the derivatives of what they return, with its FFTW plans
(``hybridsolver.plugin.operators``; the manifests are in :mod:`.export`).  Derivatives
are spectral on the periodic box ``(Ly, Lx)``, with the Nyquist wavenumbers set to zero
so that derivatives of real fields stay real; the filter width is ``delta = sqrt(dx dy)``
with ``dx = Lx/nx``, ``dy = Ly/ny`` from the input's shape and ``options["length_x"]``,
``options["length_y"]``.  ``u = psi_y``, ``v = -psi_x``.

- :class:`Smagorinsky`: ``nu_t = (cs delta)^2 |S|``, ``|S| = sqrt(2 S_ij S_ij)``, and the
  tendency is the curl of ``div(2 nu_t S)``.  Input ``x`` (B, 2, ny, nx): the strain
  ``S11 = u_x = psi_xy`` and ``S12 = (u_y + v_x)/2 = (psi_yy - psi_xx)/2``; output
  (B, 2, ny, nx): ``T11 = 2 nu_t S11`` and ``T12 = 2 nu_t S12``, whose tendency is
  ``-2 d_xy T11 + (d_xx - d_yy) T12``.  Its kinetic-energy tendency is ``-<nu_t |S|^2>``
  exactly on the grid.
- :class:`Leith`: ``nu_t = (c_leith delta)^3 |grad omega|`` (Leith 1996); input
  ``(omega_x, omega_y)``, output the flux ``nu_t grad omega``, whose divergence is the
  tendency.
- :class:`StochasticBackscatter`: Smagorinsky plus a random vorticity forcing
  ``c_back cs^2 |S|^2 eta`` whose local amplitude follows the local dissipation
  ``nu_t |S|^2 / delta^2``; ``eta`` is the host's standard normal noise (B, ny, nx)
  smoothed by a Gaussian filter of width ``2 delta`` and rescaled to unit variance (the
  module's only transforms, ``plugins/spectral.py``'s batch-invariant ones).  Output
  (B, 3, ny, nx): Smagorinsky's two channels and the forcing itself.
- :class:`SmallCNN`: physical vorticity (B, 1, ny, nx) to a physical tendency; three 3x3
  circular convolutions (1 -> width -> width -> 1) in float32; used to measure batching,
  its weights are whatever ``torch.manual_seed`` gives (untrained).
"""
import math
from typing import Dict, List

import torch
from torch import nn

from ..spectral import irfft2_rows, rfft2_rows


def filter_width(x: torch.Tensor, options: Dict[str, float]) -> float:
    """``delta = sqrt(dx dy)`` of the grid of ``x`` (..., ny, nx) on the box in ``options``."""
    return math.sqrt(options["length_y"] / x.shape[-2] * options["length_x"] / x.shape[-1])


class Smagorinsky(nn.Module):
    def __init__(self, cs=0.17):
        super().__init__()
        self.cs = float(cs)

    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float]) -> torch.Tensor:
        s_norm = 2.0 * torch.sqrt(x[:, 0] ** 2 + x[:, 1] ** 2)
        return (2.0 * (self.cs * filter_width(x, options)) ** 2) * s_norm[:, None] * x


class Leith(nn.Module):
    def __init__(self, c_leith=1.0):
        super().__init__()
        self.c_leith = float(c_leith)

    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float]) -> torch.Tensor:
        grad = torch.sqrt(x[:, 0] ** 2 + x[:, 1] ** 2)
        return ((self.c_leith * filter_width(x, options)) ** 3) * grad[:, None] * x


class StochasticBackscatter(nn.Module):
    def __init__(self, cs=0.17, c_back=0.5):
        super().__init__()
        self.cs = float(cs)
        self.c_back = float(c_back)
        # the smoothing filter of the last grid seen, (ny, nx//2+1), and that grid (ny, nx, Ly, Lx)
        self.smoothing = torch.zeros(0, 0, dtype=torch.float64)
        self.grid: List[float] = [0.0, 0.0, 0.0, 0.0]

    def smoothing_filter(self, ny: int, nx: int, ly: float, lx: float) -> torch.Tensor:
        """The Gaussian ``exp(-k^2 w^2 / 2)``, ``w = 2 delta``, divided by the std of filtered
        unit white noise (the root mean of its square over the full spectrum): (ny, nx//2+1)."""
        grid = [float(ny), float(nx), ly, lx]
        if grid != self.grid:
            ky = torch.fft.fftfreq(ny, 1.0 / ny, dtype=torch.float64)[:, None] * (2 * math.pi / ly)
            kx = torch.fft.rfftfreq(nx, 1.0 / nx, dtype=torch.float64)[None, :] * (2 * math.pi / lx)
            width = 2.0 * math.sqrt(ly / ny * lx / nx)
            gauss = torch.exp(-0.5 * (kx**2 + ky**2) * width**2)
            full = torch.cat([gauss, gauss[:, 1:(nx + 1) // 2].flip(1)], dim=1)
            self.smoothing = gauss / torch.sqrt((full**2).mean())
            self.grid = grid
        return self.smoothing

    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float]) -> torch.Tensor:
        ny, nx = x.shape[-2], x.shape[-1]
        smoothing = self.smoothing_filter(ny, nx, options["length_y"], options["length_x"])
        eta = irfft2_rows(rfft2_rows(noise[0]) * smoothing, nx)
        s_norm = 2.0 * torch.sqrt(x[:, 0] ** 2 + x[:, 1] ** 2)
        stress = (2.0 * (self.cs * filter_width(x, options)) ** 2) * s_norm[:, None] * x
        forcing = (self.c_back * self.cs**2) * s_norm * s_norm * eta
        return torch.cat([stress, forcing[:, None]], dim=1)


class SmallCNN(nn.Module):
    def __init__(self, width=8, scale=1e-3):
        super().__init__()
        conv = dict(kernel_size=3, padding=1, padding_mode="circular", dtype=torch.float32)
        self.layers = nn.Sequential(nn.Conv2d(1, width, **conv), nn.GELU(), nn.Conv2d(width, width, **conv),
                                    nn.GELU(), nn.Conv2d(width, 1, **conv))
        self.scale = float(scale)

    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float]) -> torch.Tensor:
        return self.scale * self.layers(x)
