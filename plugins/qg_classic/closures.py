"""pyqg 0.7.2's subgrid parameterizations for the two-layer QG model, as torch modules.

Each module maps the spectral streamfunction ``x = psi`` (B, 2, ny, nx//2+1), complex,
unnormalised rfft2 (the host's derived field ``psi`` of ``qg2layer``, pyqg's ``ph``), to
the spectrum of a PV tendency (B, 2, ny, nx//2+1) (1/s^2), with the plugin signature
``forward(x, noise, options)``.  The operations are pyqg's (``pyqg/parameterizations.py``
and the kernel's ``_do_uv_subgrid_parameterization``), with its wavenumbers: ``ik``,
``il`` keep the Nyquist wavenumbers (the Nyquist row negative), ``dx = L/nx``.  A
velocity parameterization's forcing ``(du, dv)`` enters the PV tendency as its curl
``-il F(du) + ik F(dv)``; a PV parameterization's ``dq`` as ``F(dq)``.  pyqg starts from
its physical ``u, v`` and so do these modules (:meth:`QGOperators.velocity_hats`).

- :class:`Smagorinsky` (pyqg ``Smagorinsky``, velocity): ``nu = (C_S dx)^2
  sqrt(2 (Sxx^2 + Syy^2 + 2 Sxy^2))`` and ``(du, dv) = 2 div(nu S)``.
- :class:`BackscatterBiharmonic` (pyqg ``BackscatterBiharmonic``, PV; Jansen and Held
  2014): biharmonic Smagorinsky dissipation ``D = -lap(dx^2 nu lap^2 psi)`` plus the
  backscatter ``-C_B lap^2 psi <psi D> / (<psi lap^2 psi> + eps)``, where ``<.>`` is the
  layer-thickness-weighted sum of layer means (``Hi = (H1, H1/delta)``), per member.
- :class:`ZannaBolton2020` (pyqg ``ZannaBolton2020``, velocity): the equation-discovery
  closure ``kappa div`` of the tensor built from the relative vorticity, shearing and
  stretching deformations.

Transforms are ``plugins/spectral.py``'s batch-invariant row-by-row ones.
"""
from typing import Dict, List

import torch

from ..spectral import RowTransforms, wavenumbers


class QGOperators(RowTransforms):
    """pyqg's spectral derivatives ``ik``, ``il`` (complex, (1, nx//2+1), (ny, 1)) and
    the grid spacing ``dx`` (m) on a square periodic domain of side ``length`` (m)."""

    def __init__(self, shape, length):
        super().__init__(shape)
        ky, kx = wavenumbers(shape, length, zero_nyquist=False)
        self.register_buffer("ik", 1j * kx)
        self.register_buffer("il", 1j * ky)
        self.dx = float(length[1]) / int(shape[1])

    def velocity_hats(self, psi: torch.Tensor):
        """Spectra of the physical velocities ``u = F^-1(-il psi)``, ``v = F^-1(ik psi)``: the
        round trip through physical space drops the parts of ``-il psi`` and ``ik psi`` that
        no real field has (at the Nyquist wavenumbers), as pyqg's ``fft(m.u)`` does."""
        return self.spectral(self.real(-self.il * psi)), self.spectral(self.real(self.ik * psi))

    def curl(self, du: torch.Tensor, dv: torch.Tensor) -> torch.Tensor:
        """PV tendency spectrum ``-il F(du) + ik F(dv)`` of a physical velocity forcing."""
        return -self.il * self.spectral(du) + self.ik * self.spectral(dv)

    def strain(self, uh: torch.Tensor, vh: torch.Tensor):
        """Physical (Sxx, Syy, Sxy) of velocity spectra."""
        sxx = self.real(uh * self.ik)
        syy = self.real(vh * self.il)
        sxy = 0.5 * self.real(uh * self.il + vh * self.ik)
        return sxx, syy, sxy

    def smagorinsky_viscosity(self, sxx: torch.Tensor, syy: torch.Tensor, sxy: torch.Tensor,
                              constant: float) -> torch.Tensor:
        """``nu = (C dx)^2 sqrt(2 (Sxx^2 + Syy^2 + 2 Sxy^2))`` (m^2/s), physical."""
        return (constant * self.dx) ** 2 * torch.sqrt(2 * (sxx**2 + syy**2 + 2 * sxy**2))


class Smagorinsky(QGOperators):
    def __init__(self, shape, length, constant=0.1):
        super().__init__(shape, length)
        self.constant = float(constant)

    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float]) -> torch.Tensor:
        sxx, syy, sxy = self.strain(*self.velocity_hats(x))
        nu = self.smagorinsky_viscosity(sxx, syy, sxy, self.constant)
        nu_sxx = self.spectral(nu * sxx)
        nu_sxy = self.spectral(nu * sxy)
        nu_syy = self.spectral(nu * syy)
        du = 2 * (self.real(nu_sxx * self.ik) + self.real(nu_sxy * self.il))
        dv = 2 * (self.real(nu_sxy * self.ik) + self.real(nu_syy * self.il))
        return self.curl(du, dv)


class BackscatterBiharmonic(QGOperators):
    def __init__(self, shape, length, H1, delta, smag_constant=0.08, back_constant=0.99, eps=1e-32):
        super().__init__(shape, length)
        self.register_buffer("Hi", torch.tensor([H1, H1 / delta], dtype=torch.float64))
        self.register_buffer("lap", (self.ik**2 + self.il**2).real)
        self.smag_constant = float(smag_constant)
        self.back_constant = float(back_constant)
        self.eps = float(eps)

    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float]) -> torch.Tensor:
        nu = self.smagorinsky_viscosity(*self.strain(*self.velocity_hats(x)), self.smag_constant)
        psi = self.real(x)
        lap_lap_psi = self.real(self.lap**2 * x)
        dissipation = -self.real(self.lap * self.spectral(lap_lap_psi * self.dx**2 * nu))
        transfer = (self.Hi * (psi * dissipation).mean(dim=(-1, -2))).sum(dim=-1)
        norm = (self.Hi * (psi * lap_lap_psi).mean(dim=(-1, -2))).sum(dim=-1) + self.eps
        backscatter = -self.back_constant * lap_lap_psi * (transfer / norm)[:, None, None, None]
        return self.spectral(dissipation + backscatter)


class ZannaBolton2020(QGOperators):
    def __init__(self, shape, length, constant=-46761284.0):
        super().__init__(shape, length)
        self.constant = float(constant)

    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float]) -> torch.Tensor:
        uh, vh = self.velocity_hats(x)
        vx = self.real(vh * self.ik)
        vy = self.real(vh * self.il)
        ux = self.real(uh * self.ik)
        uy = self.real(uh * self.il)
        rel_vort = vx - uy
        shearing = vx + uy
        stretching = ux - vy
        rv_stretch = self.spectral(rel_vort * stretching)
        rv_shear = self.spectral(rel_vort * shearing)
        sum_sqs = self.spectral(rel_vort**2 + shearing**2 + stretching**2) / 2.0
        du = self.constant * self.real(self.ik * (sum_sqs - rv_shear) + self.il * rv_stretch)
        dv = self.constant * self.real(self.il * (sum_sqs + rv_shear) + self.ik * rv_stretch)
        return self.curl(du, dv)
