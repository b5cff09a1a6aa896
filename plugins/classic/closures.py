"""Eddy-viscosity closures for 2D vorticity-form Navier-Stokes, as torch modules.

The eddy-viscosity modules map the vorticity spectrum ``x`` (B, 1, ny, nx//2+1),
complex, the unnormalised rfft2 that is the host's state, to the spectrum of a
vorticity tendency (B, 1, ny, nx//2+1), with the plugin signature
``forward(x, noise, options)`` (hybridsolver.plugin): spectral in and out saves the
transforms a physical interface would add on both sides.  Derivatives are spectral on
the periodic box ``(Ly, Lx)``, with the Nyquist wavenumbers set to zero so that
derivatives of real fields stay real; the filter width is ``delta = sqrt(dx dy)``.

Transforms are ``plugins/spectral.py``'s batch-invariant row-by-row ones.

- :class:`Smagorinsky`: ``nu_t = (cs delta)^2 |S|``, ``|S| = sqrt(2 S_ij S_ij)``, and the
  tendency is the curl of ``div(2 nu_t S)``.  Its kinetic-energy tendency is
  ``-<nu_t |S|^2>`` exactly on the grid.
- :class:`Leith`: ``nu_t = (c_leith delta)^3 |grad omega|`` and the tendency
  ``div(nu_t grad omega)`` (Leith 1996).
- :class:`StochasticBackscatter`: Smagorinsky plus a random vorticity forcing
  ``c_back cs^2 |S|^2 eta`` whose local amplitude follows the local dissipation
  ``nu_t |S|^2 / delta^2``; ``eta`` is the host's standard normal noise (B, ny, nx)
  smoothed by a Gaussian filter of width ``2 delta`` and rescaled to unit variance.
- :class:`SmallCNN`: physical vorticity (B, 1, ny, nx) to a physical tendency; three 3x3 circular convolutions (1 -> width -> width -> 1) in
  float32; used to measure batching, its weights are whatever ``torch.manual_seed``
  gives (untrained).
"""
import math
from typing import Dict, List

import torch
from torch import nn

from ..spectral import RowTransforms, wavenumbers


class SpectralClosure(RowTransforms):
    """Shared spectral operators of a closure on one grid."""

    def __init__(self, shape, length):
        super().__init__(shape)
        ky, kx = wavenumbers(shape, length, zero_nyquist=False)
        k2 = kx**2 + ky**2  # the Laplacian keeps the Nyquist wavenumbers
        inv_k2 = torch.where(k2 > 0, 1.0 / torch.where(k2 > 0, k2, torch.ones_like(k2)), torch.zeros_like(k2))
        ky, kx = wavenumbers(shape, length)
        self.register_buffer("kx", kx)
        self.register_buffer("ky", ky)
        self.register_buffer("inv_k2", inv_k2)
        self.delta = math.sqrt(length[0] / shape[0] * length[1] / shape[1])

    def strain(self, w_hat: torch.Tensor):
        """Strain components ``S11 = u_x`` (``S22 = -S11``) and ``S12``, and ``|S|``."""
        psi = w_hat * self.inv_k2
        u_hat = 1j * self.ky * psi
        v_hat = -1j * self.kx * psi
        s11 = self.real(1j * self.kx * u_hat)
        s12 = 0.5 * self.real(1j * self.ky * u_hat + 1j * self.kx * v_hat)
        return s11, s12, 2.0 * torch.sqrt(s11 * s11 + s12 * s12)

    def curl_div(self, t11: torch.Tensor, t12: torch.Tensor) -> torch.Tensor:
        """Spectrum of the vorticity tendency of the momentum tendency ``div T``,
        ``T = [[t11, t12], [t12, -t11]]`` (physical (B, ny, nx))."""
        t11_hat = self.spectral(t11)
        t12_hat = self.spectral(t12)
        return 2.0 * self.kx * self.ky * t11_hat + (self.ky**2 - self.kx**2) * t12_hat

    def smagorinsky(self, w_hat: torch.Tensor, cs: float):
        """Spectrum of the Smagorinsky vorticity tendency, and ``|S|`` (physical)."""
        s11, s12, s_norm = self.strain(w_hat)
        nu = (cs * self.delta) ** 2 * s_norm
        return self.curl_div(2.0 * nu * s11, 2.0 * nu * s12), s_norm


class Smagorinsky(SpectralClosure):
    def __init__(self, shape, length, cs=0.17):
        super().__init__(shape, length)
        self.cs = float(cs)

    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float]) -> torch.Tensor:
        tendency, _ = self.smagorinsky(x[:, 0], self.cs)
        return tendency[:, None]


class Leith(SpectralClosure):
    def __init__(self, shape, length, c_leith=1.0):
        super().__init__(shape, length)
        self.c_leith = float(c_leith)

    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float]) -> torch.Tensor:
        w_hat = x[:, 0]
        wx = self.real(1j * self.kx * w_hat)
        wy = self.real(1j * self.ky * w_hat)
        nu = (self.c_leith * self.delta) ** 3 * torch.sqrt(wx * wx + wy * wy)
        flux_x = self.spectral(nu * wx)
        flux_y = self.spectral(nu * wy)
        return (1j * self.kx * flux_x + 1j * self.ky * flux_y)[:, None]


class StochasticBackscatter(SpectralClosure):
    def __init__(self, shape, length, cs=0.17, c_back=0.5):
        super().__init__(shape, length)
        self.cs = float(cs)
        self.c_back = float(c_back)
        ky, kx = wavenumbers(shape, length, zero_nyquist=False)
        width = 2.0 * self.delta
        gauss = torch.exp(-0.5 * (kx**2 + ky**2) * width**2)
        # variance of the filtered unit white noise: mean of |G|^2 over the full spectrum
        full = torch.cat([gauss, gauss[:, 1:(shape[1] + 1) // 2].flip(1)], dim=1)
        self.register_buffer("smoothing", gauss / torch.sqrt((full**2).mean()))

    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float]) -> torch.Tensor:
        tendency, s_norm = self.smagorinsky(x[:, 0], self.cs)
        eta = self.real(self.spectral(noise[0]) * self.smoothing)
        return (tendency + self.spectral(self.c_back * self.cs**2 * s_norm * s_norm * eta))[:, None]


class SmallCNN(nn.Module):
    def __init__(self, width=8, scale=1e-3):
        super().__init__()
        conv = dict(kernel_size=3, padding=1, padding_mode="circular", dtype=torch.float32)
        self.layers = nn.Sequential(nn.Conv2d(1, width, **conv), nn.GELU(), nn.Conv2d(width, width, **conv),
                                    nn.GELU(), nn.Conv2d(width, 1, **conv))
        self.scale = float(scale)

    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float]) -> torch.Tensor:
        return self.scale * self.layers(x)
