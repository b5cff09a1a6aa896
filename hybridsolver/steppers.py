"""Time integrators for ``dw/dt = L w + N(w, t)`` on ensemble states.

``L`` is a diagonal linear operator (``equation.linear``, per spectral coefficient; None
for equations without one) and ``N`` the explicit term (``equation.explicit(w, out)``)
plus, when set with :meth:`Stepper.set_tendency`, a tendency held constant over the step
(hooks), plus, when set with :meth:`Stepper.set_source`, a source evaluated at each
stage time.  Each stepper advances the state ``w`` in place by one step of ``dt`` from
time ``t`` (``step(w, t)``) and then applies the equation's state filter
(``equation.state_filter``, pyqg's exponential filter, or None); the simulation adds
stochastic forcing afterwards.

Spectral equations (``navier_stokes2d``, ``qg2layer``, spectral ``kdv``) have complex
states ``(M, ..., n//2+1)``; finite-difference ones (finite-difference ``kdv``,
``burgers2d``) have real physical states and no linear operator.

- ``cn``: forward Euler for N, Crank-Nicolson for a real L (1 evaluation of N per step):
  ``w+ = [(1 + dt L/2) w + dt N(w)] / (1 - dt L/2)``.  First order (second order when
  N = 0).
- ``cn_rk4``: the Carpenter-Kennedy five-stage, fourth-order low-storage Runge-Kutta
  for N with Crank-Nicolson on each sub-interval for a real L (jax-cfd's
  ``crank_nicolson_rk4``): fourth order in N, second order in L.  A relaxation set with
  :meth:`Stepper.set_relaxation` (a penalized body) acts after each stage.
- ``ab3``: third-order Adams-Bashforth with an exact integrating factor ``E = exp(dt L)``
  for a real L (one evaluation of N per step), started with integrating-factor Euler
  then AB2.
- ``etdrk4``: Cox-Matthews exponential time differencing RK4 for any diagonal L, real
  or complex (4 evaluations per step), fourth order; the phi-function coefficients are
  contour integrals (Kassam & Trefethen 2005).
- ``heun``: Heun's method (explicit trapezoidal RK2) on the whole right-hand side, 2
  evaluations per step, for equations without L.
- ``rk4``: the classical fourth-order Runge-Kutta on the whole right-hand side, 4
  evaluations per step, for equations without L.
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
    """out += x (flat float64 arrays of one size)."""
    for k in prange(out.size):
        out[k] += x[k]


@numba.njit(parallel=True, cache=True)
def _axpy(out, x, a, y):
    """out = x + a y (flat float64 arrays)."""
    for k in prange(out.size):
        out[k] = x[k] + a * y[k]


@numba.njit(parallel=True, cache=True)
def _heun_update(w, k1, k2, half_dt):
    """w += half_dt (k1 + k2) (flat float64 arrays)."""
    for k in prange(w.size):
        w[k] += half_dt * (k1[k] + k2[k])


@numba.njit(parallel=True, cache=True)
def _rk4_stage(w, k, acc, s, weight, a):
    """acc += weight k; s = w + a k (flat float64 arrays): one classical RK4 stage."""
    for i in prange(w.size):
        acc[i] += weight * k[i]
        s[i] = w[i] + a * k[i]


@numba.njit(parallel=True, cache=True)
def _rk4_final(w, acc, k, sixth_dt):
    """w += sixth_dt (acc + k) (flat float64 arrays)."""
    for i in prange(w.size):
        w[i] += sixth_dt * (acc[i] + k[i])


# ETDRK4 kernels: complex states as (M, K) with complex coefficients (K,).

@numba.njit(parallel=True, cache=True)
def _etd_stage(out, base, e, q, n, n_weight, n_old, old_weight):
    """out = e base + q (n_weight n - old_weight n_old)."""
    members, size = out.shape
    for m in prange(members):
        o, b, nr, no = out[m], base[m], n[m], n_old[m]
        for k in range(size):
            o[k] = e[k] * b[k] + q[k] * (n_weight * nr[k] - old_weight * no[k])


@numba.njit(parallel=True, cache=True)
def _etd_final(w, e, f1, f2, f3, nv, na, nb, nc):
    """w = e w + f1 nv + 2 f2 (na + nb) + f3 nc."""
    members, size = w.shape
    for m in prange(members):
        wr, r0, ra, rb, rc = w[m], nv[m], na[m], nb[m], nc[m]
        for k in range(size):
            wr[k] = e[k] * wr[k] + f1[k] * r0[k] + 2.0 * f2[k] * (ra[k] + rb[k]) + f3[k] * rc[k]


def flat(a):
    """Flat float64 view of a C-contiguous real or complex array (complex as (re, im) pairs)."""
    return a.reshape(-1).view(np.float64)


def multiply(w, factor):
    """w *= factor in place: complex (M, ny, nx//2+1) by real (ny, nx//2+1) (state filters)."""
    _multiply(float_view(w), factor)


class Stepper:
    """Common part: the explicit term, with the held tendency and the source added when
    set, and the state filter."""

    _tendency = None
    _source = None
    _relaxation = None
    stage_relaxation = False  # whether the stepper applies a relaxation after each stage

    def set_relaxation(self, relaxation):
        """For steppers with :attr:`stage_relaxation`: ``relaxation(w, h)`` relaxes ``w`` in
        place over a time ``h`` (``navier_stokes2d``'s penalized body, sponge and walls);
        it is applied after each stage over the stage's share of dt.  None to stop."""
        self._relaxation = relaxation

    def filter(self, w):
        """Apply the equation's state filter to ``w`` in place (nothing without one)."""
        if self.equation.state_filter is not None:
            multiply(w, self.equation.state_filter)

    def set_tendency(self, tendency):
        """Add ``tendency`` (state shape and dtype; read at every evaluation) to N; None to stop."""
        self._tendency = None if tendency is None else flat(tendency)

    def set_source(self, source):
        """Add a time-dependent source to N: ``source(t, out)`` adds its value at time ``t``
        (state shape and dtype) to ``out`` in place, at every stage time; None to stop."""
        self._source = source

    def explicit(self, w, out, t):
        """out = N(w) (+ held tendency) (+ source at time t); equations with fixed wall
        values (``zero_walls``, Dirichlet ``burgers2d``) keep them fixed."""
        self.equation.explicit(w, out)
        if self._tendency is None and self._source is None:
            return
        if self._tendency is not None:
            _add(flat(out), self._tendency)
        if self._source is not None:
            self._source(t, out)
        zero_walls = getattr(self.equation, "zero_walls", None)
        if zero_walls is not None:
            zero_walls(out)

    def buffer(self):
        """A new zeroed aligned array of the state's shape and dtype."""
        return fft.zeros(self.equation.state_shape, self.equation.state_dtype)

    def checkpoint(self):
        """{name: array} of what the next step needs besides the state (multistep
        history); {} for one-step schemes."""
        return {}

    def restore(self, arrays):
        """Set what :meth:`checkpoint` returned."""

    def zero_members(self, rows):
        """Zero the history of members ``rows`` (a boolean (M,) mask): quarantined members
        restart from a zero state."""


def _real_linear(equation, scheme):
    """The equation's linear operator, which ``scheme`` needs real."""
    linear = equation.linear
    if linear is None or np.iscomplexobj(linear):
        raise ValueError(f"time.scheme {scheme} needs a real linear operator; {equation.name} has "
                         f"{'none' if linear is None else 'a complex one'}")
    return linear


class CrankNicolsonEuler(Stepper):
    """``cn``: forward Euler + Crank-Nicolson, one explicit evaluation per step."""

    evaluations = 1

    def __init__(self, equation, dt):
        self.equation = equation
        half = 0.5 * dt * _real_linear(equation, "cn")
        self.a = (1 + half) / (1 - half)
        self.b = dt / (1 - half)
        self.n = self.buffer()
        self._n_f = float_view(self.n)

    def step(self, w, t):
        self.explicit(w, self.n, t)
        _affine_update(float_view(w), self.a, self.b, self._n_f)
        self.filter(w)


class CrankNicolsonRK4(Stepper):
    """``cn_rk4``: low-storage IMEX RK4 (Carpenter-Kennedy) with Crank-Nicolson."""

    evaluations = len(_RK4_BETA)
    stage_relaxation = True

    def __init__(self, equation, dt):
        self.equation = equation
        self.dt = dt
        linear = _real_linear(equation, "cn_rk4")
        self.stages = []  # (alpha, beta, a, b, the stage's share of dt)
        for k, (beta, gamma) in enumerate(zip(_RK4_BETA, _RK4_GAMMA)):
            mu = 0.5 * dt * (_RK4_ALPHA[k + 1] - _RK4_ALPHA[k]) * linear
            self.stages.append((_RK4_ALPHA[k], beta, (1 + mu) / (1 - mu), gamma * dt / (1 - mu),
                                (_RK4_ALPHA[k + 1] - _RK4_ALPHA[k]) * dt))
        self.n = self.buffer()
        self.h = self.buffer()
        self._n_f, self._h_f = float_view(self.n), float_view(self.h)

    def step(self, w, t):
        w_f = float_view(w)
        for alpha, beta, a, b, share in self.stages:
            self.explicit(w, self.n, t + alpha * self.dt)
            _rk_stage(w_f, self._h_f, self._n_f, beta, a, b)
            if self._relaxation is not None:
                self._relaxation(w, share)
        self.filter(w)


class AdamsBashforth3(Stepper):
    """``ab3``: integrating-factor AB3, started with Euler then AB2; the state filter is
    applied in the same pass (pyqg's update ``filtr (q + dt1 N0 + dt2 N1 + dt3 N2)``).
    For a zero linear operator and no source, an equation may provide ``explicit_ab3(w,
    history, tendency, (c0, c1, c2), filter)`` doing the explicit evaluation and this
    update member by member while the member's data are in cache (``qg2layer``).

    Keeps the last three explicit evaluations; ``history_length`` counts how many are
    valid (0 after construction or :meth:`reset`).
    """

    evaluations = 1
    _COEFFS = ((1.0, 0.0, 0.0), (1.5, -0.5, 0.0), (23 / 12, -16 / 12, 5 / 12))

    def __init__(self, equation, dt):
        self.equation = equation
        self.dt = dt
        linear = _real_linear(equation, "ab3")
        self.e1 = np.exp(dt * linear)
        self.e2 = self.e1**2
        self.e3 = self.e1**3
        self.state_filter = np.ones_like(self.e1) if equation.state_filter is None else equation.state_filter
        self.history = [self.buffer() for _ in range(3)]
        self.history_length = 0

    def reset(self):
        self.history_length = 0

    def checkpoint(self):
        """The three explicit evaluations (newest first) and how many are valid."""
        return {"history": np.stack(self.history), "history_length": np.array(self.history_length)}

    def restore(self, arrays):
        for buffer, saved in zip(self.history, arrays["history"]):
            buffer[...] = saved
        self.history_length = int(arrays["history_length"])

    def zero_members(self, rows):
        for buffer in self.history:
            buffer[rows] = 0.0

    def step(self, w, t):
        self.history.insert(0, self.history.pop())  # the oldest buffer becomes the newest
        c0, c1, c2 = self._COEFFS[min(self.history_length, 2)]
        self.history_length = min(self.history_length + 1, 3)
        fused = getattr(self.equation, "explicit_ab3", None)
        if fused is not None and self._source is None and not self.equation.linear.any():
            # one pass per member: explicit term, held tendency, update and filter
            fused(w, self.history, self._tendency, (c0 * self.dt, c1 * self.dt, c2 * self.dt), self.state_filter)
            return
        self.explicit(w, self.history[0], t)
        _ab3_update(float_view(w), self.e1, self.e2, self.e3, self.state_filter, *map(float_view, self.history),
                    c0 * self.dt, c1 * self.dt, c2 * self.dt)


def phi_coefficients(hL, points=64):
    """ETDRK4 coefficients for ``hL = dt L`` (any shape, real or complex), by the mean over
    ``points`` points of the unit circle around each ``hL`` (Kassam & Trefethen 2005):
    ``(E, E2, Q, f1, f2, f3)`` with ``E = exp(hL)``, ``E2 = exp(hL/2)``, and, divided by dt,
    ``Q = ((exp(z/2) - 1)/z)``, ``f1 = (-4 - z + e^z (4 - 3z + z^2))/z^3``,
    ``f2 = (2 + z + e^z (z - 2))/z^3``, ``f3 = (-4 - 3z - z^2 + e^z (4 - z))/z^3`` averaged
    over ``z = hL + r``.  Complex arrays of ``hL``'s shape; the contour keeps them free of
    the cancellation that the closed forms suffer for small ``|hL|``.
    """
    hL = np.asarray(hL, dtype=np.complex128)
    r = np.exp(2j * np.pi * (np.arange(points) + 0.5) / points)
    z = hL[..., None] + r
    ez, ez2 = np.exp(z), np.exp(z / 2)
    mean = lambda a: a.mean(axis=-1)  # noqa: E731
    Q = mean((ez2 - 1) / z)
    f1 = mean((-4 - z + ez * (4 - 3 * z + z**2)) / z**3)
    f2 = mean((2 + z + ez * (z - 2)) / z**3)
    f3 = mean((-4 - 3 * z - z**2 + ez * (4 - z)) / z**3)
    return np.exp(hL), np.exp(hL / 2), Q, f1, f2, f3


class ETDRK4(Stepper):
    """``etdrk4``: Cox-Matthews ETDRK4 for a diagonal L (real or complex) on a complex
    spectral state; for ``v`` at time t, with ``N_x = N(x)`` and the coefficients of
    :func:`phi_coefficients` (times dt):

        a = E2 v + Q N_v,          b = E2 v + Q N_a,          c = E2 a + Q (2 N_b - N_v),
        v+ = E v + f1 N_v + 2 f2 (N_a + N_b) + f3 N_c,

    with N evaluated at t, t + dt/2, t + dt/2 and t + dt.  Holds 7 state-sized buffers.
    """

    evaluations = 4

    def __init__(self, equation, dt):
        self.equation = equation
        self.dt = dt
        if equation.linear is None or equation.state_dtype != np.complex128:
            raise ValueError(f"time.scheme etdrk4 needs a spectral state with a diagonal linear operator; "
                             f"{equation.name} has none")
        K = int(np.prod(equation.state_shape[1:]))
        hL = np.broadcast_to(dt * equation.linear, equation.state_shape[1:]).reshape(K)
        E, E2, Q, f1, f2, f3 = phi_coefficients(hL)
        self.E, self.E2 = E, E2
        self.Q, self.f1, self.f2, self.f3 = dt * Q, dt * f1, dt * f2, dt * f3
        self.nv, self.na, self.nb, self.nc = (self.buffer() for _ in range(4))
        self.a, self.b, self.c = (self.buffer() for _ in range(3))

    def step(self, w, t):
        M, h = w.shape[0], self.dt
        rows = lambda x: x.reshape(M, -1)  # noqa: E731
        v, a, b, c = rows(w), rows(self.a), rows(self.b), rows(self.c)
        nv, na, nb, nc = rows(self.nv), rows(self.na), rows(self.nb), rows(self.nc)
        self.explicit(w, self.nv, t)
        _etd_stage(a, v, self.E2, self.Q, nv, 1.0, nv, 0.0)
        self.explicit(self.a, self.na, t + h / 2)
        _etd_stage(b, v, self.E2, self.Q, na, 1.0, na, 0.0)
        self.explicit(self.b, self.nb, t + h / 2)
        _etd_stage(c, a, self.E2, self.Q, nb, 2.0, nv, 1.0)
        self.explicit(self.c, self.nc, t + h)
        _etd_final(v, self.E, self.f1, self.f2, self.f3, nv, na, nb, nc)
        self.filter(w)


class _Explicit(Stepper):
    """Explicit Runge-Kutta methods on the whole right-hand side (no linear operator)."""

    def __init__(self, equation, dt):
        self.equation = equation
        self.dt = dt
        if equation.linear is not None and np.any(equation.linear):
            raise ValueError(f"time.scheme {self.scheme} treats the whole right-hand side explicitly; "
                             f"{equation.name} has a linear operator for etdrk4/cn schemes")


class Heun(_Explicit):
    """``heun``: ``w+ = w + dt/2 (k1 + k2)``, ``k1 = N(w, t)``, ``k2 = N(w + dt k1, t + dt)``.
    Second order; 3 state-sized buffers."""

    scheme = "heun"
    evaluations = 2

    def __init__(self, equation, dt):
        super().__init__(equation, dt)
        self.k1, self.k2, self.s = self.buffer(), self.buffer(), self.buffer()

    def step(self, w, t):
        self.explicit(w, self.k1, t)
        _axpy(flat(self.s), flat(w), self.dt, flat(self.k1))
        self.explicit(self.s, self.k2, t + self.dt)
        _heun_update(flat(w), flat(self.k1), flat(self.k2), 0.5 * self.dt)
        self.filter(w)


class RungeKutta4(_Explicit):
    """``rk4``: the classical RK4, ``w+ = w + dt/6 (k1 + 2 k2 + 2 k3 + k4)`` with stages at
    t, t + dt/2, t + dt/2, t + dt.  3 state-sized buffers (stage state, stage slope, sum)."""

    scheme = "rk4"
    evaluations = 4

    def __init__(self, equation, dt):
        super().__init__(equation, dt)
        self.k, self.acc, self.s = self.buffer(), self.buffer(), self.buffer()

    def step(self, w, t):
        h = self.dt
        w_f, k, acc, s = flat(w), flat(self.k), flat(self.acc), flat(self.s)
        acc[...] = 0.0
        self.explicit(w, self.k, t)
        _rk4_stage(w_f, k, acc, s, 1.0, h / 2)
        self.explicit(self.s, self.k, t + h / 2)
        _rk4_stage(w_f, k, acc, s, 2.0, h / 2)
        self.explicit(self.s, self.k, t + h / 2)
        _rk4_stage(w_f, k, acc, s, 2.0, h)
        self.explicit(self.s, self.k, t + h)
        _rk4_final(w_f, acc, k, h / 6)
        self.filter(w)


STEPPERS = {"cn": CrankNicolsonEuler, "cn_rk4": CrankNicolsonRK4, "ab3": AdamsBashforth3, "etdrk4": ETDRK4,
            "heun": Heun, "rk4": RungeKutta4}
SCHEMES = tuple(STEPPERS)


def make_stepper(scheme, equation, dt):
    """The stepper for ``time.scheme`` (one of :data:`SCHEMES`)."""
    return STEPPERS[scheme](equation, dt)
