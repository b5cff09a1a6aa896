"""pyqg 0.7.2's subgrid parameterizations for the two-layer QG model, as torch modules.

The modules are pointwise on any grid: the host hands them, in physical space, the
derivatives of its derived fields ``psi``, ``u``, ``v`` (pyqg's ``ph``, ``u``, ``v``) and
finishes their outputs, with its FFTW plans and pyqg's wavenumbers
(``hybridsolver.plugin.operators``; the manifests are in :mod:`.export`).  The
arithmetic is pyqg's (``pyqg/parameterizations.py`` and the kernel's
``_do_uv_subgrid_parameterization``); ``dx = L/nx`` comes from the input's shape and
``options["length_x"]`` (m).  Each input entry is a layered field: two channels,
layer 1 then layer 2; inputs are (B, 2 n, ny, nx) for n entries.

- :class:`Smagorinsky` (pyqg ``Smagorinsky``, velocity): input ``(u_x, v_y, u_y, v_x)``
  (1/s), ``S = (u_x, (u_y + v_x)/2, v_y)``, ``nu = (C_S dx)^2 sqrt(2 (Sxx^2 + Syy^2 +
  2 Sxy^2))``; output the stress ``2 nu S`` (``Txx``, ``Txy``, ``Tyy``, m^2/s^2), whose
  divergence is pyqg's ``(du, dv)`` and whose curl-divergence the PV tendency.
- :class:`ZannaBolton2020` (pyqg ``ZannaBolton2020``, velocity): input ``(u_x, u_y, v_x,
  v_y)``; output the stress ``kappa (|grad u|^2 / 2 - zeta D, zeta D~, |grad u|^2 / 2 +
  zeta D)`` built from the relative vorticity ``zeta``, the shearing ``D`` and the
  stretching ``D~`` deformations.
- :class:`BackscatterBiharmonic` (pyqg ``BackscatterBiharmonic``, PV; Jansen and Held
  2014): input ``(psi, lap psi, lap^2 psi, u_x, v_y, u_y, v_x)``; output ``(F, B)`` with
  ``F = dx^2 nu lap^2 psi`` (the host takes ``-lap F``, the biharmonic Smagorinsky
  dissipation ``D``) and the backscatter ``B = -C_B lap^2 psi <psi D> / (<psi lap^2 psi> +
  eps)``, where ``<.>`` is the layer-thickness-weighted sum of layer means
  (``Hi = (H1, H1/delta)``), per member; ``<psi D> = -<lap psi F>`` on the periodic grid.
"""
from typing import Dict, List

import torch
from torch import nn


def smagorinsky_viscosity(sxx: torch.Tensor, syy: torch.Tensor, sxy: torch.Tensor, constant: float,
                          dx: float) -> torch.Tensor:
    """``nu = (C dx)^2 sqrt(2 (Sxx^2 + Syy^2 + 2 Sxy^2))`` (m^2/s), physical (in place on one
    new tensor: each operation is a pass over the members' fields)."""
    nu = sxx * sxx
    nu.addcmul_(syy, syy).addcmul_(sxy, sxy, value=2.0)
    return nu.mul_(2.0).sqrt_().mul_((constant * dx) ** 2)


def strain(x: torch.Tensor):
    """``(Sxx, Syy, Sxy)`` of the inputs ``(u_x, v_y, u_y, v_x)``, channels 0:8 of ``x``."""
    sxy = x[:, 4:6] + x[:, 6:8]
    return x[:, 0:2], x[:, 2:4], sxy.mul_(0.5)


def grid_spacing(x: torch.Tensor, options: Dict[str, float]) -> float:
    """pyqg's ``dx = L / nx`` (m) of the grid of ``x`` (..., ny, nx)."""
    return options["length_x"] / x.shape[-1]


class Smagorinsky(nn.Module):
    def __init__(self, constant=0.1):
        super().__init__()
        self.constant = float(constant)

    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float]) -> torch.Tensor:
        sxx, syy, sxy = strain(x)
        nu = smagorinsky_viscosity(sxx, syy, sxy, self.constant, grid_spacing(x, options)).mul_(2.0)
        out = torch.empty((x.shape[0], 6) + x.shape[2:], dtype=x.dtype, device=x.device)
        torch.mul(nu, sxx, out=out[:, 0:2])
        torch.mul(nu, sxy, out=out[:, 2:4])
        torch.mul(nu, syy, out=out[:, 4:6])
        return out


class ZannaBolton2020(nn.Module):
    def __init__(self, constant=-46761284.0):
        super().__init__()
        self.constant = float(constant)

    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float]) -> torch.Tensor:
        ux, uy, vx, vy = x[:, 0:2], x[:, 2:4], x[:, 4:6], x[:, 6:8]
        rel_vort = vx - uy
        shearing = vx + uy
        stretching = ux - vy
        half_sum_sqs = rel_vort * rel_vort
        half_sum_sqs.addcmul_(shearing, shearing).addcmul_(stretching, stretching).mul_(0.5 * self.constant)
        rv_shear = shearing.mul_(rel_vort).mul_(self.constant)
        out = torch.empty((x.shape[0], 6) + x.shape[2:], dtype=x.dtype, device=x.device)
        torch.sub(half_sum_sqs, rv_shear, out=out[:, 0:2])
        torch.mul(rel_vort, stretching, out=out[:, 2:4]).mul_(self.constant)
        torch.add(half_sum_sqs, rv_shear, out=out[:, 4:6])
        return out


class BackscatterBiharmonic(nn.Module):
    def __init__(self, H1, delta, smag_constant=0.08, back_constant=0.99, eps=1e-32):
        super().__init__()
        self.register_buffer("Hi", torch.tensor([H1, H1 / delta], dtype=torch.float64))
        self.smag_constant = float(smag_constant)
        self.back_constant = float(back_constant)
        self.eps = float(eps)

    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float]) -> torch.Tensor:
        psi, lap_psi, lap_lap_psi = x[:, 0:2], x[:, 2:4], x[:, 4:6]
        sxx, syy, sxy = strain(x[:, 6:14])
        dx = grid_spacing(x, options)
        flux = smagorinsky_viscosity(sxx, syy, sxy, self.smag_constant, dx).mul_(lap_lap_psi).mul_(dx**2)
        transfer = -(self.Hi * (lap_psi * flux).mean(dim=(-1, -2))).sum(dim=-1)
        norm = (self.Hi * (psi * lap_lap_psi).mean(dim=(-1, -2))).sum(dim=-1) + self.eps
        backscatter = -self.back_constant * lap_lap_psi * (transfer / norm)[:, None, None, None]
        return torch.cat([flux, backscatter], dim=1)
