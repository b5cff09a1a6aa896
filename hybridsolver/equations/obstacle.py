"""Solid bodies and open-flow boundaries for ``navier_stokes2d``: Brinkman penalization
and a sponge, integrated exactly over each stage of the step.

The velocity is ``u = (U, 0) + curl psi``: the box's mean flow is the inflow ``U``
(``equation.inflow.velocity``) and the vorticity state carries the rest.  Over a time
``h`` the velocity relaxes, at each point and for each component c, towards a target
``t_c`` at a rate ``s_c``,

    du_c/dt = -s_c (u_c - t_c),   solved exactly over h:  u_c <- t_c + (u_c - t_c) exp(-s_c h),

so dt is not limited by the penalization parameter ``eta``, and the vorticity becomes
the curl of the relaxed velocity (its divergent part is dropped: the projection of the
penalized velocity).  ``cn_rk4`` relaxes after each of its five stages over the stage's
share of dt, so that every evaluation of the advection sees the body; the other schemes
relax once after the step (:attr:`hybridsolver.steppers.Stepper.stage_relaxation`).  The
rates and targets add up:

- the body (``equation.obstacle``, a cylinder of ``diameter`` D at ``center``): rate
  chi/eta on both components, target 0, with the mask chi of :func:`cylinder_mask`
  (1 inside, a sin^2 ramp of ``smoothing`` cells centred on its surface);
- the sponge (``equation.inflow``): rate ``sponge_rate`` ramped smoothly (sin^2) over
  the first half of the last ``sponge_width`` of the box in x and flat over its second
  half, target (U, 0): the flow leaving at the box's x edge re-enters as uniform inflow;
- side walls (``inflow.walls``): bands of ``wall_cells`` grid cells at the box's y edge,
  rate 1/eta on v (``free_slip``) or on both components (``no_slip``), target 0.

The force of the fluid on the body (per unit span and density) is the momentum the body's
share of the relaxations of a step removes, divided by dt:
``F = sum (chi/eta) / s (u_before - u_after) dA / dt``;
``drag_coefficient = 2 F_x / (U^2 D)`` and ``lift_coefficient = 2 F_y / (U^2 D)``.
Each relaxation costs 2 inverse and 2 forward FFTs.
"""
import numba
import numpy as np
from numba import prange

from .. import fft
from ..fft import float_view


@numba.njit(parallel=True, cache=True)
def _relax(u, v, decay_u, decay_v, target_u, target_v, body_u, body_v, area, rows, impulse):
    """Relax (u, v) (M, ny, nx) in place; impulse[m] += sum body_c (before - after) * area.

    Rows run in parallel, each member's sum is taken from its rows' sums (``rows``,
    (M, ny, 2) scratch) in row order: the same bits for any thread count."""
    members, ny, nx = u.shape
    for r in prange(members * ny):
        m, i = r // ny, r % ny
        fx = 0.0
        fy = 0.0
        for j in range(nx):
            a = target_u[i, j] + (u[m, i, j] - target_u[i, j]) * decay_u[i, j]
            b = target_v[i, j] + (v[m, i, j] - target_v[i, j]) * decay_v[i, j]
            fx += body_u[i, j] * (u[m, i, j] - a)
            fy += body_v[i, j] * (v[m, i, j] - b)
            u[m, i, j] = a
            v[m, i, j] = b
        rows[m, i, 0] = fx
        rows[m, i, 1] = fy
    for m in range(members):
        fx = 0.0
        fy = 0.0
        for i in range(ny):
            fx += rows[m, i, 0]
            fy += rows[m, i, 1]
        impulse[m, 0] += fx * area
        impulse[m, 1] += fy * area


@numba.njit(parallel=True, cache=True)
def _curl(u_hat, v_hat, kx, ky, scale, w):
    """w = scale (i kx v_hat - i ky u_hat), the mean mode zero (complex as float views)."""
    members, ny, nxh = w.shape[0], w.shape[1], w.shape[2] // 2
    for r in prange(members * ny):
        m, i = r // ny, r % ny
        ur, vr, wr = u_hat[m, i], v_hat[m, i], w[m, i]
        kyi = ky[i]
        for j in range(nxh):
            # i k a = (-k a_im, k a_re)
            wr[2 * j] = scale * (-kx[j] * vr[2 * j + 1] + kyi * ur[2 * j + 1])
            wr[2 * j + 1] = scale * (kx[j] * vr[2 * j] - kyi * ur[2 * j])
    for m in range(members):
        w[m, 0, 0] = 0.0
        w[m, 0, 1] = 0.0


def _drop_nyquist(w, grid):
    """Zero the Nyquist row and column of spectra ``w`` (M, ny, nx//2+1) (even sizes), where
    a real field's derivative has no real value: the state stays symmetric under
    reflections of the box."""
    if grid.ny % 2 == 0:
        w[:, grid.ny // 2] = 0.0
    if grid.nx % 2 == 0:
        w[:, :, -1] = 0.0


def cylinder_mask(grid, center, diameter, smoothing):
    """chi (ny, nx) in [0, 1] of a cylinder of ``diameter`` at ``center`` (x, y): 1 inside
    r <= (D - w)/2, 0 outside r >= (D + w)/2, a sin^2 ramp between (1/2 at r = D/2),
    w = ``smoothing`` grid cells.

    The ramp is centred on the surface, so the mask's area is the disc's, pi D^2/4, to
    O(w^2).  (A ramp inside the surface, r in [D/2 - w, D/2], converged from the other
    side and more slowly: at Re 100 St 0.175, 0.174, 0.1725, 0.1717 and C_L 0.24 to 0.33 at
    16, 24, 36, 54 points per D, against 0.168, 0.168, 0.169 and 0.45, 0.42, 0.39 with the
    centred ramp.)"""
    X, Y = grid.mesh()
    r = np.hypot(X - center[0], Y - center[1])
    width = smoothing * max(grid.dx, grid.dy)
    s = np.clip((0.5 * (diameter + width) - r) / width, 0.0, 1.0)
    return np.sin(0.5 * np.pi * s) ** 2


def sponge_profile(grid, width):
    """The sponge's shape (ny, nx) in [0, 1]: 0 before the last ``width`` of the box in x,
    rising as sin^2 over its first half, 1 over its second half."""
    X, _ = grid.mesh()
    s = (X - (grid.origin[1] + grid.Lx - width)) / (0.5 * width)
    return np.where(s <= 0, 0.0, np.where(s >= 1, 1.0, np.sin(0.5 * np.pi * np.clip(s, 0, 1)) ** 2))


def wall_profile(grid, cells):
    """1 (ny, nx) on the ``cells`` grid rows at each y edge of the box (rows 0.. and ny-cells..), else 0."""
    rows = np.zeros(grid.ny)
    rows[:cells] = 1.0
    rows[grid.ny - cells:] = 1.0
    return np.broadcast_to(rows[:, None], grid.shape).copy()


class Penalization:
    """The relaxation step and body forces of ``navier_stokes2d``'s obstacle and inflow.

    ``obstacle`` and ``inflow`` are the case's ``equation.obstacle`` and
    ``equation.inflow`` tables; ``members`` the ensemble size M;
    ``velocity_spectra(w, kx, ky, u_hat, v_hat)`` fills the spectra of the velocity of
    state ``w`` (divided by N, mean zero) with wavenumbers kx, ky.
    """

    def __init__(self, grid, transforms, obstacle, inflow, members, velocity_spectra):
        self.grid = grid
        self._velocity_spectra = velocity_spectra
        self.velocity = float(inflow.get("velocity", 0.0)) if inflow["type"] != "none" else 0.0
        shape = grid.shape
        rate_u, rate_v = np.zeros(shape), np.zeros(shape)
        pull_u = np.zeros(shape)  # sum of rate * target of the x component (targets of v are 0)
        self.body = obstacle["type"] != "none"
        if self.body:
            self.diameter = float(obstacle["diameter"])
            chi = cylinder_mask(grid, obstacle["center"], self.diameter, obstacle["smoothing"]) / obstacle["eta"]
            rate_u += chi
            rate_v += chi
        if inflow["type"] != "none":
            sponge = inflow["sponge_rate"] * sponge_profile(grid, inflow["sponge_width"])
            rate_u += sponge
            rate_v += sponge
            pull_u += sponge * self.velocity
            if inflow["walls"] != "none":
                wall = wall_profile(grid, inflow["wall_cells"]) / inflow["wall_eta"]
                rate_v += wall
                if inflow["walls"] == "no_slip":
                    rate_u += wall
        self._rate = (rate_u, rate_v)
        safe_u, safe_v = np.where(rate_u > 0, rate_u, 1.0), np.where(rate_v > 0, rate_v, 1.0)
        self.target_u, self.target_v = pull_u / safe_u, np.zeros(shape)
        chi_share = (chi if self.body else np.zeros(shape))
        self.body_u, self.body_v = chi_share / safe_u, chi_share / safe_v
        # derivatives without the Nyquist modes (a real field's derivative there is not real)
        self.kx, self.ky = grid.kx.copy(), grid.ky.copy()
        if grid.nx % 2 == 0:
            self.kx[-1] = 0.0
        if grid.ny % 2 == 0:
            self.ky[grid.ny // 2] = 0.0
        self._decays = {}  # (decay_u, decay_v) by relaxation time
        self.force = np.zeros((members, 2))  # of the last step; 0 before the first (no step has acted)
        self._impulse = np.zeros((members, 2))  # removed by the relaxations of the step under way
        self._row_force = np.zeros((members, grid.ny, 2))
        M = members
        self._u_hat = fft.empty((M,) + grid.spectral_shape, np.complex128)
        self._v_hat = fft.empty((M,) + grid.spectral_shape, np.complex128)
        self._u = fft.empty((M,) + shape, np.float64)
        self._v = fft.empty((M,) + shape, np.float64)
        self._inverse = (transforms.bind(False, self._u_hat, self._u), transforms.bind(False, self._v_hat, self._v))
        self._forward = (transforms.bind(True, self._u, self._u_hat), transforms.bind(True, self._v, self._v_hat))

    def _decay(self, h):
        """(exp(-s_u h), exp(-s_v h)), each (ny, nx), kept for each relaxation time h."""
        if h not in self._decays:
            self._decays[h] = (np.exp(-self._rate[0] * h), np.exp(-self._rate[1] * h))
        return self._decays[h]

    def relax(self, w, h):
        """Relax the velocity of state ``w`` (spectral vorticity, (M, ny, nx//2+1), in place)
        over a time ``h`` and add the momentum the body removed to the step's impulse."""
        g = self.grid
        decay_u, decay_v = self._decay(h)
        self._velocity_spectra(w, self.kx, self.ky, self._u_hat, self._v_hat)
        self._u_hat[:, 0, 0] = self.velocity
        for transform in self._inverse:
            transform()
        _relax(self._u, self._v, decay_u, decay_v, self.target_u, self.target_v, self.body_u, self.body_v,
               g.dx * g.dy, self._row_force, self._impulse)
        for transform in self._forward:
            transform()
        _curl(float_view(self._u_hat), float_view(self._v_hat), self.kx, self.ky, 1.0, float_view(w))
        _drop_nyquist(w, g)

    def end_step(self, dt):
        """After the relaxations of a step of ``dt``: the body force is their impulse / dt."""
        np.divide(self._impulse, dt, out=self.force)
        self._impulse[...] = 0.0

    def coefficients(self):
        """{'drag_coefficient', 'lift_coefficient'}: (M,) of the last step (0 before it)."""
        scale = 2.0 / (self.velocity ** 2 * self.diameter) if self.velocity else np.nan
        return {"drag_coefficient": scale * self.force[:, 0], "lift_coefficient": scale * self.force[:, 1]}


def strouhal_number(time, lift, diameter, velocity, skip=0.5):
    """St = D / (U T) from a lift series: ``time`` (T,) and ``lift`` (M, T), the period T of
    each member's signal from its upward crossings of its mean, linearly interpolated,
    after the first ``skip`` fraction of the record (the start-up transient).  (M,);
    NaN for a member with fewer than 3 crossings (no shedding)."""
    time = np.asarray(time, dtype=np.float64)
    lift = np.atleast_2d(np.asarray(lift, dtype=np.float64))
    keep = (time >= time[0] + skip * (time[-1] - time[0])) & np.isfinite(lift).all(axis=0)
    t = time[keep]
    out = np.full(lift.shape[0], np.nan)
    for m, signal in enumerate(lift[:, keep]):
        s = signal - signal.mean()
        up = np.flatnonzero((s[:-1] < 0) & (s[1:] >= 0))
        if up.size < 3:
            continue
        crossings = t[up] - s[up] * (t[up + 1] - t[up]) / (s[up + 1] - s[up])
        out[m] = diameter / (velocity * np.mean(np.diff(crossings)))
    return out


def wake_statistics(time, drag, lift, diameter, velocity, skip=0.5):
    """{strouhal, mean_drag_coefficient, lift_amplitude}: per member (lists of M floats)
    over the record after its first ``skip`` fraction; ``drag`` and ``lift`` (M, T) the
    coefficients at ``time`` (T,).  The lift amplitude is half the peak-to-peak range."""
    time = np.asarray(time, dtype=np.float64)
    keep = time >= time[0] + skip * (time[-1] - time[0])
    drag, lift = np.atleast_2d(drag)[:, keep], np.atleast_2d(lift)[:, keep]
    return {"strouhal": strouhal_number(time[keep], lift, diameter, velocity, skip=0.0).tolist(),
            "mean_drag_coefficient": np.nanmean(drag, axis=1).tolist(),
            "lift_amplitude": (0.5 * (np.nanmax(lift, axis=1) - np.nanmin(lift, axis=1))).tolist()}
