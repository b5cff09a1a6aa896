"""Viscous Burgers in the multiscale latent-SDE paper's scalar 2D form:

    du/dt = -(du/dx + du/dy) u + nu (d^2u/dx^2 + d^2u/dy^2)

on a rectangle (:class:`hybridsolver.grid.BoxGrid`), by second-order central differences
(numba kernels); the state is u itself, real ``(M, ny, nx)`` with x along the last axis,
stepped with ``heun`` (the paper's choice) or ``rk4``.

``equation.boundary``:

- ``dirichlet`` (the paper's): the points include both walls (``dx = Lx / (nx - 1)``) and
  u = 0 there; the right-hand side (with hook tendencies and sources) is zero on the
  walls, and a state set from fields gets its wall values set to zero.
- ``periodic``: ``dx = Lx / nx``, neighbours wrap around.  A field ``u = v(x + y, t)``
  then stays one and ``w = 2 v`` solves the 1D viscous Burgers equation
  ``w_t + w w_s = 2 nu w_ss`` in ``s = x + y``, whose Cole-Hopf solutions are exact
  references (``tests/test_burgers2d.py``).

Stability: for a frozen speed ``|u| <= U`` the central stencil's eigenvalues are
``-4 nu (sin^2(a/2)/dx^2 + sin^2(b/2)/dy^2) + i u (sin a/dx + sin b/dy)``; Heun is stable
on the negative real axis up to 2, so ``dt <= dx^2/(4 nu)`` on a square grid for the
diffusion alone, and the advection needs that diffusion to damp it.  For the paper's
``128^2``, ``nu = 0.005`` and ``|u| <= 1``: diffusion limits dt to ``3.1e-3``;
``cases/burgers2d.toml`` uses ``dt = 1e-4`` (ten steps per snapshot), where the
amplification factor of every mode is below 1 (``tests/test_burgers2d.py`` checks).

Diagnostics (per member): ``mean`` (grid mean of u), ``energy`` (grid mean of u^2/2) and
``max_abs``.
"""
import numba
import numpy as np
from numba import prange

from .physical import PhysicalState


@numba.njit(parallel=True, cache=True)
def _tendency(u, out, cx, cy, dx2, dy2, nu, periodic):
    """out = -((u_E - u_W) cx + (u_N - u_S) cy) u + nu ((u_E - 2u + u_W) dx2 + (u_N - 2u + u_S) dy2)
    for every member (M, ny, nx); ``cx = 1/(2 dx)``, ``dx2 = 1/dx^2`` (same for y).  Walls
    (``periodic = False``) get 0."""
    members, ny, nx = u.shape
    for r in prange(members * ny):
        m, i = r // ny, r % ny
        o = out[m, i]
        if not periodic and (i == 0 or i == ny - 1):
            o[:] = 0.0
            continue
        c, s, n = u[m, i], u[m, (i - 1) % ny], u[m, (i + 1) % ny]
        for j in range(1, nx - 1):
            uc = c[j]
            o[j] = (-((c[j + 1] - c[j - 1]) * cx + (n[j] - s[j]) * cy) * uc
                    + nu * ((c[j + 1] - 2.0 * uc + c[j - 1]) * dx2 + (n[j] - 2.0 * uc + s[j]) * dy2))
        if periodic:
            for j, w, e in ((0, nx - 1, 1), (nx - 1, nx - 2, 0)):
                uc = c[j]
                o[j] = (-((c[e] - c[w]) * cx + (n[j] - s[j]) * cy) * uc
                        + nu * ((c[e] - 2.0 * uc + c[w]) * dx2 + (n[j] - 2.0 * uc + s[j]) * dy2))
        else:
            o[0] = 0.0
            o[nx - 1] = 0.0


class Burgers2D(PhysicalState):
    """Finite-difference 2D Burgers for an ensemble of ``members`` on a :class:`BoxGrid`."""

    name = "burgers2d"
    fields = ("u",)

    def __init__(self, grid, params, members, seed=0):
        self.grid = grid
        self.members = list(members)
        self.seed = int(seed)
        self.viscosity = float(params["viscosity"])
        self.periodic = grid.periodic
        self.state_shape = (len(self.members),) + grid.shape
        self._constants = (0.5 / grid.dx, 0.5 / grid.dy, grid.dx**-2, grid.dy**-2, self.viscosity, self.periodic)

    def explicit(self, u, out):
        """out = the central-difference right-hand side of state u (M, ny, nx)."""
        _tendency(u, out, *self._constants)

    def zero_walls(self, x):
        """Set the wall values of ``x`` (M, ny, nx) to 0 in place (Dirichlet walls; nothing
        when periodic).  The stepper applies it to right-hand sides that hooks or sources
        added to, so the walls stay at u = 0."""
        if not self.periodic:
            x[:, 0, :] = 0.0
            x[:, -1, :] = 0.0
            x[:, :, 0] = 0.0
            x[:, :, -1] = 0.0

    def to_fields(self, u):
        """{'u': (M, ny, nx)}: a copy of the state."""
        return {"u": np.array(u)}

    def from_fields(self, fields):
        """State from {'u': (M, ny, nx)}; with Dirichlet walls their values are set to 0."""
        u = np.array(fields["u"], dtype=np.float64)
        self.zero_walls(u)
        return u

    def diagnostics(self, u, dt):
        """Per-member scalars (M,): mean, energy (mean of u^2/2), max_abs."""
        return {"mean": u.mean(axis=(1, 2)), "energy": 0.5 * (u**2).mean(axis=(1, 2)),
                "max_abs": np.abs(u).max(axis=(1, 2))}
