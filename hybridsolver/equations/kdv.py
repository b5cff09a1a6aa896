"""The Korteweg-de Vries equation on a periodic interval (the multiscale latent-SDE
paper's 1D test problem):

    du/dt + u du/dx + nu d^3u/dx^3 = 0,   x in [0, L) periodic.

Two discretizations (``equation.discretization``), both of the field ``u`` on the points
``x_j = j dx``, ``dx = L / n`` (:class:`hybridsolver.grid.PeriodicGrid1D`):

- ``spectral``: the state is the unnormalised real FFT of u, complex ``(M, n//2+1)``.
  The linear operator ``L = i nu k^3`` (diagonal, purely imaginary) is integrated exactly
  by ``etdrk4``; the explicit term is ``N = -(i k / 2) F(u^2)`` (1 inverse and 1 forward
  FFT per evaluation) with the 2/3 rule on ``u^2`` (``grid.dealias = "2/3"``).  The
  Nyquist mode gets ``k = 0`` in odd derivatives.  The dealiased semi-discretization
  conserves ``int u``, ``int u^2`` and ``int (u^3/6 - nu u_x^2/2)`` exactly on band-limited
  states.
- ``finite_difference``: the paper's system, the state is u itself, real ``(M, n)``:

      du_j/dt = -u_j (u_{j+1} - u_{j-1}) / (2 dx) - nu (u_{j+2} - 3 u_{j+1} + 3 u_j - u_{j-1}) / dx^3.

  The dispersive stencil is upwind-biased and damps: its symbol
  ``S(theta) = e^{2i theta} - 3 e^{i theta} + 3 - e^{-i theta}`` has real part
  ``2 (1 - cos theta)^2 >= 0``, largest ``|S| = 8`` at ``theta = pi`` (real).  The linear
  eigenvalues ``-nu S / dx^3`` therefore reach ``-8 nu / dx^3`` on the real axis, and the
  explicit schemes are stable for ``dt <= 2.785 dx^3 / (8 nu)`` with ``rk4`` and
  ``dt <= 2 dx^3 / (8 nu)`` with ``heun`` (real-axis limits of their stability regions;
  the advective term adds an imaginary part ``|u| sin theta / dx`` that vanishes there and
  is small elsewhere).  For the paper's ``n = 1000``, ``L = 10``, ``nu = 0.02``:
  ``dt <= 1.74e-5`` (``rk4``) and ``1.25e-5`` (``heun``); ``cases/kdv.toml`` uses
  ``rk4`` with ``dt = 1e-3 / 64``.  It has no dealiasing (``grid.dealias`` is unused).

Diagnostics (per member): ``mass = int u dx``, ``energy = int u^2 dx``, ``hamiltonian =
int (u^3/6 - nu u_x^2/2) dx`` (u_x spectral in both discretizations) and ``max_abs``.
"""
import numba
import numpy as np
from numba import prange

from .. import fft
from ..fft import float_view


@numba.njit(parallel=True, cache=True)
def _square(u, scale):
    """u = (scale u)^2 in place, (M, n)."""
    members, n = u.shape
    for m in prange(members):
        row = u[m]
        for j in range(n):
            v = scale * row[j]
            row[j] = v * v


@numba.njit(parallel=True, cache=True)
def _spectral_tendency(u2_hat, coef, out):
    """out = i coef u2_hat (float views (M, 2 nh)); coef = -k mask / 2."""
    members, nh = out.shape[0], out.shape[1] // 2
    for m in prange(members):
        a, o = u2_hat[m], out[m]
        for j in range(nh):
            c = coef[j]
            o[2 * j] = -c * a[2 * j + 1]
            o[2 * j + 1] = c * a[2 * j]


@numba.njit(cache=True)
def _fd_point(u, j, jm1, jp1, jp2, c_adv, c_disp):
    return -u[j] * (u[jp1] - u[jm1]) * c_adv - c_disp * (u[jp2] - 3.0 * u[jp1] + 3.0 * u[j] - u[jm1])


@numba.njit(parallel=True, cache=True)
def _fd_tendency(u, out, c_adv, c_disp):
    """The paper's finite-difference right-hand side for every member, (M, n) periodic;
    ``c_adv = 1/(2 dx)``, ``c_disp = nu/dx^3``."""
    members, n = u.shape
    for m in prange(members):
        row, o = u[m], out[m]
        for j in range(1, n - 2):
            o[j] = -row[j] * (row[j + 1] - row[j - 1]) * c_adv - c_disp * (
                row[j + 2] - 3.0 * row[j + 1] + 3.0 * row[j] - row[j - 1])
        o[0] = _fd_point(row, 0, n - 1, 1, 2, c_adv, c_disp)
        o[n - 2] = _fd_point(row, n - 2, n - 3, n - 1, 0, c_adv, c_disp)
        o[n - 1] = _fd_point(row, n - 1, n - 2, 0, 1, c_adv, c_disp)


class _KdV:
    """What both discretizations share: fields, no noise, diagnostics."""

    name = "kdv"
    fields = ("u",)
    field_layers = {}
    derived_fields = {}
    state_filter = None
    stochastic = False

    def __init__(self, grid, params, members, seed=0):
        self.grid = grid
        self.members = list(members)
        self.seed = int(seed)
        self.viscosity = float(params["viscosity"])
        self.transforms = fft.transforms(grid.shape)

    def add_noise(self, w, step, dt):
        """No stochastic forcing in this model."""

    def derived_spectra(self, w, names):
        """No derived fields: {}."""
        return {}

    def invariants(self, u):
        """``(mass, energy, hamiltonian)``, each (M,), of physical fields u (M, n):
        ``int u``, ``int u^2`` and ``int (u^3/6 - nu u_x^2/2)`` by the rectangle rule, exact
        for the trigonometric interpolant when u is band-limited below n/3 (u_x spectral)."""
        g = self.grid
        u_x = self.transforms.to_physical(1j * g.odd_derivative_k() * self.transforms.to_spectral(u))
        return (g.dx * u.sum(axis=1), g.dx * (u**2).sum(axis=1),
                g.dx * (u**3 / 6 - 0.5 * self.viscosity * u_x**2).sum(axis=1))

    def diagnostics(self, w, dt):
        """Per-member scalars (M,): mass, energy, hamiltonian (:meth:`invariants`), max_abs."""
        u = self.to_fields(w)["u"]
        mass, energy, hamiltonian = self.invariants(u)
        return {"mass": mass, "energy": energy, "hamiltonian": hamiltonian, "max_abs": np.abs(u).max(axis=1)}

    def spectra(self, w):
        """No isotropic spectra for 1D fields: {}."""
        return {}


class KdVSpectral(_KdV):
    """Pseudo-spectral KdV for ``etdrk4``: state complex ``(M, n//2+1)``."""

    state_dtype = np.complex128

    def __init__(self, grid, params, members, seed=0):
        super().__init__(grid, params, members, seed)
        M = len(self.members)
        self.state_shape = (M,) + grid.spectral_shape
        k = grid.odd_derivative_k()
        self.linear = 1j * self.viscosity * k**3  # -nu (ik)^3
        self._coef = -0.5 * k * grid.nonlinear_mask()
        self._scratch = fft.empty(self.state_shape, np.complex128)
        self._u = fft.empty((M,) + grid.shape, np.float64)
        self._u2_hat = fft.empty(self.state_shape, np.complex128)
        self._inverse = self.transforms.bind(False, self._scratch, self._u)
        self._forward = self.transforms.bind(True, self._u, self._u2_hat)

    def explicit(self, w, out):
        """out = -(i k/2) mask F(u^2) for state w (2 FFTs, no allocation)."""
        self._scratch[...] = w
        self._inverse()
        _square(self._u, 1.0 / self.grid.n)
        self._forward()
        _spectral_tendency(float_view(self._u2_hat), self._coef, float_view(out))

    def to_fields(self, w):
        """{'u': (M, n)} physical field."""
        return {"u": self.transforms.to_physical(w)}

    def from_fields(self, fields):
        """State from {'u': (M, n)}."""
        return self.transforms.to_spectral(np.asarray(fields["u"], dtype=np.float64))

    def spectral_fields(self, w):
        """{'u': w}: the state's field in spectral space (a view)."""
        return {"u": w}

    def from_spectral_fields(self, fields):
        """State from {'u': (M, n//2+1) complex}."""
        return np.asarray(fields["u"], dtype=np.complex128)

    def spectral_operator(self, name):
        """``(A, offset)``: the spectrum of ``u`` is ``A[0, 0] w``; ``A`` (1, 1, n//2+1), offset zero."""
        return np.ones((1, 1) + self.grid.spectral_shape, np.complex128), np.zeros(1)


class KdVFiniteDifference(_KdV):
    """The paper's finite-difference KdV for ``rk4``/``heun``: state real ``(M, n)``."""

    state_dtype = np.float64
    linear = None

    def __init__(self, grid, params, members, seed=0):
        super().__init__(grid, params, members, seed)
        self.state_shape = (len(self.members),) + grid.shape
        self._c_adv = 0.5 / grid.dx
        self._c_disp = self.viscosity / grid.dx**3

    def explicit(self, u, out):
        """out = the finite-difference right-hand side of state u (M, n)."""
        _fd_tendency(u, out, self._c_adv, self._c_disp)

    def to_fields(self, u):
        """{'u': (M, n)}: a copy of the state."""
        return {"u": np.array(u)}

    def from_fields(self, fields):
        """State from {'u': (M, n)}."""
        return np.asarray(fields["u"], dtype=np.float64)
