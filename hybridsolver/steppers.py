"""Time integrators for ``dw/dt = L w + N(w)`` on spectral ensemble states.

``L`` is a real diagonal linear operator (``equation.linear``, ``(ny, nx//2+1)``) and
``N`` the explicit term (``equation.explicit(w, out)``) plus, when set with
:meth:`Stepper.set_tendency`, a tendency held constant over the step (hooks).  Each
stepper advances the state ``w`` (complex ``(M, ny, nx//2+1)``) in place by one step
of ``dt`` and then applies the equation's state filter (``equation.state_filter``, pyqg's
exponential filter, or None); the simulation adds stochastic forcing afterwards.

- ``cn``: forward Euler for N, Crank-Nicolson for L (1 evaluation of N per step):
  ``w+ = [(1 + dt L/2) w + dt N(w)] / (1 - dt L/2)``.  First order (second order when
  N = 0).
- ``cn_rk4``: the Carpenter-Kennedy five-stage, fourth-order low-storage Runge-Kutta
  for N with Crank-Nicolson on each sub-interval for L (jax-cfd's
  ``crank_nicolson_rk4``): fourth order in N, second order in L.
- ``ab3``: third-order Adams-Bashforth with an exact integrating factor ``E = exp(dt L)``
  (one evaluation of N per step), started with integrating-factor Euler then AB2.
"""
import numba
import numpy as np
from numba import prange

from . import fft
from .fft import float_view

# Carpenter & Kennedy (1994), five-stage fourth-order 2N-storage coefficients.
_RK4_ALPHA = (0.0, 0.1496590219993, 0.3704009573644, 0.6222557631345, 0.9582821306748, 1.0)
_RK4_BETA = (0.0, -0.4178904745, -1.192151694643, -1.697784692471, -1.514183444257)
_RK4_GAMMA = (0.1496590219993, 0.3792103129999, 0.8229550293869, 0.6994504559488, 0.1530572479681)


# Kernels take complex arrays as fft.float_view (M, ny, 2 (nx//2+1)), with real
# per-wavenumber coefficients (ny, nx//2+1).

@numba.njit(parallel=True, cache=True)
def _affine_update(w, a, b, n):
    """w = a w + b n."""
    members, ny, nxh = w.shape[0], w.shape[1], w.shape[2] // 2
    for r in prange(members * ny):
        m, i = r // ny, r % ny
        wr, nr, ar, br = w[m, i], n[m, i], a[i], b[i]
        for j in range(nxh):
            for c in range(2):
                k = 2 * j + c
                wr[k] = ar[j] * wr[k] + br[j] * nr[k]


@numba.njit(parallel=True, cache=True)
def _rk_stage(w, h, n, beta, a, b):
    """h = n + beta h; w = a w + b h."""
    members, ny, nxh = w.shape[0], w.shape[1], w.shape[2] // 2
    for r in prange(members * ny):
        m, i = r // ny, r % ny
        wr, hr, nr, ar, br = w[m, i], h[m, i], n[m, i], a[i], b[i]
        for j in range(nxh):
            for c in range(2):
                k = 2 * j + c
                hk = nr[k] + beta * hr[k]
                hr[k] = hk
                wr[k] = ar[j] * wr[k] + br[j] * hk


@numba.njit(parallel=True, cache=True)
def _ab3_update(w, e1, e2, e3, filt, n0, n1, n2, c0, c1, c2):
    """w = filt (e1 (w + c0 n0) + c1 e2 n1 + c2 e3 n2) (dt folded into the c's)."""
    members, ny, nxh = w.shape[0], w.shape[1], w.shape[2] // 2
    for r in prange(members * ny):
        m, i = r // ny, r % ny
        wr, r0, r1, r2 = w[m, i], n0[m, i], n1[m, i], n2[m, i]
        f1, f2, f3, fl = e1[i], e2[i], e3[i], filt[i]
        for j in range(nxh):
            for c in range(2):
                k = 2 * j + c
                wr[k] = fl[j] * (f1[j] * (wr[k] + c0 * r0[k]) + c1 * f2[j] * r1[k] + c2 * f3[j] * r2[k])


@numba.njit(parallel=True, cache=True)
def _multiply(w, factor):
    """w *= factor."""
    members, ny, nxh = w.shape[0], w.shape[1], w.shape[2] // 2
    for r in prange(members * ny):
        m, i = r // ny, r % ny
        wr, fr = w[m, i], factor[i]
        for j in range(nxh):
            for c in range(2):
                wr[2 * j + c] *= fr[j]


@numba.njit(parallel=True, cache=True)
def _add(out, x):
    """out += x (same shapes)."""
    members, ny, n = out.shape
    for r in prange(members * ny):
        m, i = r // ny, r % ny
        orow, xr = out[m, i], x[m, i]
        for k in range(n):
            orow[k] += xr[k]


def multiply(w, factor):
    """w *= factor in place: complex (M, ny, nx//2+1) by real (ny, nx//2+1) (state filters)."""
    _multiply(float_view(w), factor)


class Stepper:
    """Common part: the explicit term, with the held tendency added when one is set, and
    the state filter."""

    _tendency = None

    def filter(self, w):
        """Apply the equation's state filter to ``w`` in place (nothing without one)."""
        if self.equation.state_filter is not None:
            multiply(w, self.equation.state_filter)

    def set_tendency(self, tendency):
        """Add ``tendency`` (complex, state shape; read at every evaluation) to N; None to stop."""
        self._tendency = None if tendency is None else float_view(tendency)

    def explicit(self, w, out):
        self.equation.explicit(w, out)
        if self._tendency is not None:
            _add(float_view(out), self._tendency)


class CrankNicolsonEuler(Stepper):
    """``cn``: forward Euler + Crank-Nicolson, one explicit evaluation per step."""

    evaluations = 1

    def __init__(self, equation, dt):
        self.equation = equation
        half = 0.5 * dt * equation.linear
        self.a = (1 + half) / (1 - half)
        self.b = dt / (1 - half)
        self.n = fft.empty(equation.state_shape, np.complex128)
        self._n_f = float_view(self.n)

    def step(self, w):
        self.explicit(w, self.n)
        _affine_update(float_view(w), self.a, self.b, self._n_f)
        self.filter(w)


class CrankNicolsonRK4(Stepper):
    """``cn_rk4``: low-storage IMEX RK4 (Carpenter-Kennedy) with Crank-Nicolson."""

    evaluations = len(_RK4_BETA)

    def __init__(self, equation, dt):
        self.equation = equation
        self.stages = []
        for k, (beta, gamma) in enumerate(zip(_RK4_BETA, _RK4_GAMMA)):
            mu = 0.5 * dt * (_RK4_ALPHA[k + 1] - _RK4_ALPHA[k]) * equation.linear
            self.stages.append((beta, (1 + mu) / (1 - mu), gamma * dt / (1 - mu)))
        self.n = fft.empty(equation.state_shape, np.complex128)
        self.h = fft.zeros(equation.state_shape, np.complex128)
        self._n_f, self._h_f = float_view(self.n), float_view(self.h)

    def step(self, w):
        w_f = float_view(w)
        for beta, a, b in self.stages:
            self.explicit(w, self.n)
            _rk_stage(w_f, self._h_f, self._n_f, beta, a, b)
        self.filter(w)


class AdamsBashforth3(Stepper):
    """``ab3``: integrating-factor AB3, started with Euler then AB2; the state filter is
    applied in the same pass (pyqg's update ``filtr (q + dt1 N0 + dt2 N1 + dt3 N2)``).
    For a zero linear operator, an equation may provide ``explicit_ab3(w, history,
    tendency, (c0, c1, c2), filter)`` doing the explicit evaluation and this update
    member by member while the member's data are in cache (``qg2layer``).

    Keeps the last three explicit evaluations; ``history_length`` counts how many are
    valid (0 after construction or :meth:`reset`).
    """

    evaluations = 1
    _COEFFS = ((1.0, 0.0, 0.0), (1.5, -0.5, 0.0), (23 / 12, -16 / 12, 5 / 12))

    def __init__(self, equation, dt):
        self.equation = equation
        self.dt = dt
        self.e1 = np.exp(dt * equation.linear)
        self.e2 = self.e1**2
        self.e3 = self.e1**3
        self.state_filter = np.ones_like(self.e1) if equation.state_filter is None else equation.state_filter
        self.history = [fft.zeros(equation.state_shape, np.complex128) for _ in range(3)]
        self.history_length = 0

    def reset(self):
        self.history_length = 0

    def step(self, w):
        self.history.insert(0, self.history.pop())  # the oldest buffer becomes the newest
        c0, c1, c2 = self._COEFFS[min(self.history_length, 2)]
        self.history_length = min(self.history_length + 1, 3)
        fused = getattr(self.equation, "explicit_ab3", None)
        if fused is not None and not self.equation.linear.any():
            # one pass per member: explicit term, held tendency, update and filter
            fused(w, self.history, self._tendency, (c0 * self.dt, c1 * self.dt, c2 * self.dt), self.state_filter)
            return
        self.explicit(w, self.history[0])
        _ab3_update(float_view(w), self.e1, self.e2, self.e3, self.state_filter, *map(float_view, self.history),
                    c0 * self.dt, c1 * self.dt, c2 * self.dt)


STEPPERS = {"cn": CrankNicolsonEuler, "cn_rk4": CrankNicolsonRK4, "ab3": AdamsBashforth3}
SCHEMES = tuple(STEPPERS)


def make_stepper(scheme, equation, dt):
    """The stepper for ``time.scheme`` (one of :data:`SCHEMES`)."""
    return STEPPERS[scheme](equation, dt)
