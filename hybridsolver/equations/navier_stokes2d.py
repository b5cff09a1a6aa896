"""2D incompressible Navier-Stokes in vorticity form on a doubly periodic box.

    d(omega)/dt = -u . grad(omega) + nu lap(omega) - mu omega - beta_y v + f + beta xi

with the stream function ``lap(psi) = -omega`` and ``u = (d psi/dy, -d psi/dx)``, so
``omega = dv/dx - du/dy``.  The state is the unnormalised real FFT of the vorticity,
complex ``(M, ny, nx//2+1)``.  The linear part ``L = -nu |k|^2 - mu`` is handled by the
stepper (implicitly or exactly); :meth:`NavierStokes2D.explicit` evaluates the rest.
The beta-plane term ``-beta_y v`` (``equation.beta``; ``v = -d psi/dx``) is linear and
diagonal, ``+i beta_y kx / |k|^2`` per coefficient (zero at the Nyquist kx, so real
fields stay real): it joins ``L``, which is then complex (only ``etdrk4`` integrates
it), and Rossby waves ``omega_R = -beta_y kx / |k|^2`` propagate exactly.

The advection term uses Basdevant's form ``u.grad(omega) = d_xy(v^2 - u^2) +
(d_xx - d_yy)(u v)``, exact for a divergence-free velocity, which needs 2 inverse and
2 forward FFTs per evaluation instead of the 4 + 1 of the advective form; the forward
ones stop at the last column the dealiasing mask keeps (about a third with 2/3).  With
``dealias = "2/3"`` it is multiplied by the brick-wall mask (:meth:`Grid.nonlinear_mask`);
with ``"exponential"`` the stepper filters the state after each step (pyqg style).

Forcings (vorticity tendencies):

- ``kolmogorov``: velocity forcing ``(A sin(k y), 0)``, i.e. ``f = -A k cos(k y)``,
  ``k = 2 pi n / Ly`` for ``wavenumber = n`` (jax-cfd's ``ForcedNavierStokes2D`` on a
  2 pi box with n = 4, A = 1);
- ``diagonal``: ``f = A (sin(k (x/Lx + y/Ly)) + cos(k (x/Lx + y/Ly)))``, ``k = 2 pi n``
  (the closure paper's flow on the unit torus: n = 1, A = 0.1);
- ``cosine``: ``f = A (kx cos(kx x) + ky cos(ky y))``, ``kx = 2 pi n / Lx``, ``ky = 2 pi n / Ly``
  (the hierarchical emulator paper's jet flow: ``k_f cos(k_f y) + k_f cos(k_f x)``, n = 4, A = 1);
- ``none``.

``equation.obstacle`` and ``equation.inflow`` add a penalized body, a uniform inflow
``(U, 0)`` (the velocity is then ``(U, 0) + curl psi``), a sponge and side walls, relaxed
exactly after each stage of ``cn_rk4`` and after the step of the other schemes
(:mod:`hybridsolver.equations.obstacle`, :meth:`NavierStokes2D.relax`).

``advection = false`` leaves the advection term out (the explicit term is then the
forcing alone): the reduced model of a closure that supplies ``-u . grad(omega)`` itself
as a tendency hook (the L-CDM closure of ``plugins/lcdm``).

Stochastic forcing adds ``beta dW`` after every step, where ``dW`` is a Q-Wiener
increment over the step ``dt`` with covariance
``E[dW(x) dW(x')] = dt/|D| sum_{k != 0} exp(-alpha |k|^2) cos(k.(x - x'))``
(Lord, Powell & Shardlow, Alg. 10.6, with sqrt(q_k) = exp(-alpha |k|^2 / 2); ``alpha = 0``
is space-time white noise ``dt/(dx dy)`` per point).  Summing the reference paper's
``kappa`` sub-increments of ``dt/kappa`` has the same law, so ``kappa`` needs no key.
The mean mode gets no noise: a periodic vorticity has zero mean.  The white noise is
drawn in Fourier space (``rng.SpectralWhiteNoise``, the law of the FFT of N(0, 1) per
point) on the modes whose colouring exceeds 1e-16 of its largest value, from the member
stream ``stochastic_forcing`` at the step index.
"""
import numba
import numpy as np
from numba import prange

from .. import fft, rng
from ..diagnostics import shell_sum, spectral_mean_square
from ..fft import float_view
from .obstacle import Penalization

# Kernels take complex spectra as fft.float_view (M, ny, 2 (nx//2+1)).

@numba.njit(parallel=True, cache=True)
def _velocity_spectra(w, kx, ky, inv_k2, scale, u_hat, v_hat):
    """u_hat = i ky psi, v_hat = -i kx psi with psi = scale w / |k|^2."""
    members, ny, nxh = w.shape[0], w.shape[1], w.shape[2] // 2
    for r in prange(members * ny):
        m, i = r // ny, r % ny
        wr, ur, vr, ik = w[m, i], u_hat[m, i], v_hat[m, i], inv_k2[i]
        kyi = ky[i] * scale
        for j in range(nxh):
            re, im = wr[2 * j] * ik[j], wr[2 * j + 1] * ik[j]
            kxj = kx[j] * scale
            ur[2 * j], ur[2 * j + 1] = -kyi * im, kyi * re
            vr[2 * j], vr[2 * j + 1] = kxj * im, -kxj * re


@numba.njit(parallel=True, cache=True)
def _basdevant_products(u, v):
    """In place: u <- u^2 - v^2, v <- u v (physical, (M, ny, nx))."""
    members, ny, nx = u.shape
    for r in prange(members * ny):
        m, i = r // ny, r % ny
        ur, vr = u[m, i], v[m, i]
        for j in range(nx):
            a, b = ur[j], vr[j]
            ur[j] = a * a - b * b
            vr[j] = a * b


@numba.njit(parallel=True, cache=True)
def _advection_tendency(a_hat, b_hat, kx, ky, mask, support, forcing, out):
    """out = mask (-kx ky a_hat + (kx^2 - ky^2) b_hat) + forcing.

    a_hat = F(u^2 - v^2), b_hat = F(u v); the first term is -F(u . grad omega).
    ``support[i]`` is one past the last nonzero column of mask row i: beyond it only
    the forcing is written (the 2/3 rule zeroes 7/9 of the half spectrum).
    """
    members, ny, nxh = out.shape[0], out.shape[1], out.shape[2] // 2
    for r in prange(members * ny):
        m, i = r // ny, r % ny
        ar, br, orow, mk, fr = a_hat[m, i], b_hat[m, i], out[m, i], mask[i], forcing[i]
        kyi = ky[i]
        for j in range(support[i]):
            ca = -mk[j] * kx[j] * kyi
            cb = mk[j] * (kx[j] * kx[j] - kyi * kyi)
            for c in range(2):
                orow[2 * j + c] = ca * ar[2 * j + c] + cb * br[2 * j + c] + fr[2 * j + c]
        for k in range(2 * support[i], 2 * nxh):
            orow[k] = fr[k]


@numba.njit(parallel=True, cache=True)
def _add_scaled(w, coef, scale, noise_hat):
    """w += scale coef noise_hat, coef real (ny, nx//2+1)."""
    members, ny, nxh = w.shape[0], w.shape[1], w.shape[2] // 2
    for r in prange(members * ny):
        m, i = r // ny, r % ny
        wr, nr, cr = w[m, i], noise_hat[m, i], coef[i]
        for j in range(nxh):
            for c in range(2):
                wr[2 * j + c] += scale * cr[j] * nr[2 * j + c]



class NavierStokes2D:
    """Vorticity-form Navier-Stokes for an ensemble of ``members`` on ``grid``.

    ``params`` is the case's ``[equation]`` table (validated by ``hybridsolver.case``).
    """

    name = "navier_stokes2d"
    fields = ("vorticity",)
    field_layers = {}  # no layered fields
    # single-layer fields plugins may read: the velocity and the streamfunction
    derived_fields = {"u": None, "v": None, "psi": None}
    state_dtype = np.complex128

    def __init__(self, grid, params, members, seed=0):
        self.grid = grid
        self.members = list(members)
        self.seed = int(seed)
        self.viscosity = float(params["viscosity"])
        self.drag = float(params["drag"])
        self.advection = bool(params.get("advection", True))
        self.transforms = fft.transforms(grid.shape)
        M = len(self.members)
        self.state_shape = (M,) + grid.spectral_shape
        self.beta = float(params.get("beta", 0.0))
        self.linear = -self.viscosity * grid.k2 - self.drag
        if self.beta:
            kx = self.derivative_wavenumbers()[1]
            self.linear = self.linear + 1j * self.beta * kx * grid.inv_k2
        self.mask = grid.nonlinear_mask()
        # one past the last kept column of each mask row (0 for rows the mask zeroes)
        self._mask_support = np.array([np.flatnonzero(row)[-1] + 1 if row.any() else 0 for row in self.mask])
        self._mask_columns = int(self._mask_support.max())  # forward transforms stop there
        self.state_filter = grid.state_filter()
        self.forcing_hat = self._forcing_spectrum(params["forcing"])
        self._forcing_f = float_view(self.forcing_hat)
        noise = params["stochastic_forcing"]
        self.noise_amplitude = float(noise["amplitude"])
        if self.stochastic:
            # sqrt(q_k) sqrt(N / |D|): spectral multiplier of white noise, per sqrt(dt);
            # modes below 1e-16 of the largest are not drawn
            colour = np.exp(-0.5 * noise["alpha"] * grid.k2)
            colour[0, 0] = 0.0
            colour[colour < 1e-16 * colour.max()] = 0.0
            self._noise_colour = np.sqrt(grid.size / (grid.Lx * grid.Ly)) * colour
            self._white_noise = rng.SpectralWhiteNoise(grid.shape, colour > 0)
            self._noise_hat = fft.zeros(self.state_shape, np.complex128)
        self._u_hat = fft.empty(self.state_shape, np.complex128)
        self._v_hat = fft.empty(self.state_shape, np.complex128)
        self._u = fft.empty((M,) + grid.shape, np.float64)
        self._v = fft.empty((M,) + grid.shape, np.float64)
        self._u_hat_f, self._v_hat_f = float_view(self._u_hat), float_view(self._v_hat)
        tr = self.transforms
        self._inverse_u = tr.bind(False, self._u_hat, self._u)
        self._inverse_v = tr.bind(False, self._v_hat, self._v)
        self._forward_u = tr.bind(True, self._u, self._u_hat, self._mask_columns)
        self._forward_v = tr.bind(True, self._v, self._v_hat, self._mask_columns)
        obstacle = params.get("obstacle", {"type": "none"})
        inflow = params.get("inflow", {"type": "none"})
        self.penalization = (Penalization(grid, tr, obstacle, inflow, M, self._scaled_velocity_spectra)
                             if obstacle["type"] != "none" or inflow["type"] != "none" else None)
        self.mean_velocity = self.penalization.velocity if self.penalization else 0.0

    def _forcing_spectrum(self, forcing):
        """Unnormalised rfft of the deterministic vorticity forcing, (ny, nx//2+1)."""
        g = self.grid
        X, Y = g.mesh()
        kind = forcing["type"]
        amp = float(forcing.get("amplitude", 0.0))
        n = float(forcing.get("wavenumber", 0))
        if kind == "kolmogorov":
            k = 2 * np.pi * n / g.Ly
            field = -amp * k * np.cos(k * Y)
        elif kind == "diagonal":
            phase = 2 * np.pi * n * (X / g.Lx + Y / g.Ly)
            field = amp * (np.sin(phase) + np.cos(phase))
        elif kind == "cosine":
            kx, ky = 2 * np.pi * n / g.Lx, 2 * np.pi * n / g.Ly
            field = amp * (kx * np.cos(kx * X) + ky * np.cos(ky * Y))
        else:
            field = np.zeros(g.shape)
        return self.transforms.to_spectral(field[None])[0]

    def explicit(self, w, out):
        """out = -F(u . grad omega) (dealiased) + F(f) for state w; 4 FFTs, no allocation.

        Without advection (``advection = false``), out = F(f).
        """
        if not self.advection:
            out[...] = self.forcing_hat
            return
        g = self.grid
        _velocity_spectra(float_view(w), g.kx, g.ky, g.inv_k2, 1.0 / g.size, self._u_hat_f, self._v_hat_f)
        self._u_hat[:, 0, 0] = self.mean_velocity  # the inflow (0 without one)
        self._inverse_u()
        self._inverse_v()
        _basdevant_products(self._u, self._v)
        self._forward_u()
        self._forward_v()
        _advection_tendency(self._u_hat_f, self._v_hat_f, g.kx, g.ky, self.mask, self._mask_support,
                            self._forcing_f, float_view(out))

    def relax(self, w, h):
        """The penalized body, sponge and walls relax the velocity of ``w`` over a time ``h``
        (in place; after each stage or after the step:
        :class:`hybridsolver.equations.obstacle.Penalization`)."""
        self.penalization.relax(w, h)

    def _scaled_velocity_spectra(self, w, kx, ky, u_hat, v_hat):
        """u_hat, v_hat: the velocity spectra of state ``w`` divided by N (mean zero), with
        wavenumbers ``kx``, ``ky``."""
        g = self.grid
        _velocity_spectra(float_view(w), kx, ky, g.inv_k2, 1.0 / g.size, float_view(u_hat), float_view(v_hat))

    @property
    def stochastic(self):
        return self.noise_amplitude > 0

    def add_noise(self, w, step, dt):
        """Add ``beta dW`` over a step of ``dt`` with index ``step`` (0 for the step from 0 to 1)."""
        if not self.stochastic:
            return
        self._white_noise.draw(self.seed, self.members, "stochastic_forcing", step, self._noise_hat)
        _add_scaled(float_view(w), self._noise_colour, self.noise_amplitude * np.sqrt(dt), float_view(self._noise_hat))

    def noise_increment(self, step, dt):
        """The ``beta dW`` that :meth:`add_noise` adds for step ``step``: a new spectral
        array (M, ny, nx//2+1), zero without stochastic forcing."""
        out = fft.zeros(self.state_shape, np.complex128)
        self.add_noise(out, step, dt)
        return out

    # ---- fields and diagnostics -------------------------------------------------

    def to_fields(self, w):
        """{'vorticity': (M, ny, nx)} physical arrays from a state."""
        return {"vorticity": self.transforms.to_physical(w)}

    def from_fields(self, fields):
        """State from {'vorticity': (M, ny, nx)}."""
        return self.transforms.to_spectral(np.asarray(fields["vorticity"], dtype=np.float64))

    def spectral_fields(self, w):
        """{'vorticity': w}: the state's fields in spectral space (views)."""
        return {"vorticity": w}

    def derived_spectra(self, w, names):
        """Spectra of the derived fields among ``names``, each a new (M, ny, nx//2+1) array
        (unnormalised rfft): the velocity ``u``, ``v``, the inflow's mean flow ``(U, 0)``
        included, and the streamfunction ``psi`` of the periodic part (``u = psi_y``,
        ``v = -psi_x``, ``lap psi = -omega``)."""
        wanted = [n for n in names if n in self.derived_fields]
        spectra = {}
        g = self.grid
        if "u" in wanted or "v" in wanted:
            spectra["u"] = fft.empty(w.shape, np.complex128)
            spectra["v"] = fft.empty(w.shape, np.complex128)
            _velocity_spectra(float_view(w), g.kx, g.ky, g.inv_k2, 1.0, float_view(spectra["u"]),
                              float_view(spectra["v"]))
            spectra["u"][:, 0, 0] = self.mean_velocity * g.size
        if "psi" in wanted:
            spectra["psi"] = w * g.inv_k2
        return {name: spectra[name] for name in wanted}

    def spectral_operator(self, name):
        """``(A, offset)``: the spectrum of field ``name`` (``vorticity``, ``psi``, ``u``, ``v``)
        is ``A[0, 0] w + offset[0]`` at wavenumber 0 (the inflow's mean velocity, ``u`` only);
        ``A`` (1, 1, ny, nx//2+1) complex, as :meth:`derived_spectra`."""
        g = self.grid
        operator = {"vorticity": np.ones(g.spectral_shape), "psi": g.inv_k2, "u": 1j * g.ky[:, None] * g.inv_k2,
                    "v": -1j * g.kx[None, :] * g.inv_k2}[name]
        offset = self.mean_velocity * g.size if name == "u" else 0.0
        return np.asarray(operator, np.complex128)[None, None], np.array([offset])

    def derivative_wavenumbers(self):
        """``(ky (ny, 1), kx (1, nx//2+1))`` of the derivatives the host takes for plugins
        (hybridsolver.plugin.operators): the Nyquist wavenumbers are zero, as in the
        classic closures, so that derivatives of real fields stay real."""
        g = self.grid
        ky, kx = g.ky.copy(), g.kx.copy()
        if g.ny % 2 == 0:
            ky[g.ny // 2] = 0.0
        if g.nx % 2 == 0:
            kx[g.nx // 2] = 0.0
        return ky[:, None], kx[None, :]

    def from_spectral_fields(self, fields):
        """State from {'vorticity': (M, ny, nx//2+1) complex}."""
        return np.asarray(fields["vorticity"], dtype=np.complex128)

    def velocity(self, w):
        """Physical velocity ``(u, v)``, each (M, ny, nx)."""
        spectra = self.derived_spectra(w, ("u", "v"))
        return self.transforms.to_physical(spectra["u"]), self.transforms.to_physical(spectra["v"])

    def diagnostics(self, w, dt):
        """Per-member scalars, each (M,): domain means with the 1/2 convention.

        energy = <|u|^2>/2, enstrophy = <omega^2>/2, palinstrophy = <|grad omega|^2>/2,
        max_vorticity = max |omega|, cfl = dt max(|u|/dx + |v|/dy).
        """
        g = self.grid
        power = np.abs(w) ** 2
        u, v = self.velocity(w)
        omega = self.transforms.to_physical(w)
        out = {
            "energy": 0.5 * spectral_mean_square(power * g.inv_k2, g),
            "enstrophy": 0.5 * spectral_mean_square(power, g),
            "palinstrophy": 0.5 * spectral_mean_square(power * g.k2, g),
            "max_vorticity": np.abs(omega).max(axis=(1, 2)),
            "cfl": dt * (np.abs(u) / g.dx + np.abs(v) / g.dy).max(axis=(1, 2)),
        }
        if self.penalization is not None and self.penalization.body:
            out |= self.penalization.coefficients()
        return out

    def spectra(self, w):
        """Isotropic energy and enstrophy spectra, each (M, nshell) (see :meth:`Grid.shells`).

        Summed over shells they give the energy and enstrophy of the modes inside the
        inscribed circle ``|k| <= min(kx_max, ky_max)``.
        """
        g = self.grid
        power = np.abs(w) ** 2
        return {
            "energy_spectrum": 0.5 * shell_sum(power * g.inv_k2, g),
            "enstrophy_spectrum": 0.5 * shell_sum(power, g),
        }
