"""Two-layer quasi-geostrophic flow on a doubly periodic beta plane (pyqg's ``QGModel``).

The PV anomalies of the two layers,

    q1 = lap(psi1) + F1 (psi2 - psi1),   q2 = lap(psi2) + F2 (psi1 - psi2),

with ``F1 = rd^-2 / (1 + delta)``, ``F2 = delta F1`` and ``delta = H1 / H2``, evolve as

    dq_j/dt = -J(psi_j, q_j) - U_j dq_j/dx - beta_j dpsi_j/dx  [ - r_ek lap(psi2) in layer 2 ],

with background PV gradients ``beta1 = beta + F1 (U1 - U2)``, ``beta2 = beta - F2 (U1 - U2)``.
Units are SI (metres, seconds).  The state is the unnormalised real FFT of q, complex
``(M, 2, ny, nx//2+1)`` (layer 0 on top).

The discretisation is pyqg 0.7.2's, operation for operation, so that the two agree to
round-off (``tests/test_qg.py``): the inversion solves the 2x2 system per wavenumber
(the ``kappa = 0`` mode gets psi = 0); the advection is the flux form
``-(ik F((u + U_j) q) + il F(v q))`` computed from physical ``u = -psi_y``, ``v = psi_x``
and q with no dealiasing, plus ``-ik beta_j psi``; the bottom drag adds
``r_ek kappa^2 psi2`` to the layer-2 tendency; pyqg steps with ``ab3`` and filters the
state after every step with its exponential filter (``grid.dealias = "exponential"``,
``filterfac``, cut-off 0.65 pi).  With ``dealias = "2/3"`` the advective tendency is
multiplied by the 2/3 mask instead (not pyqg's scheme).

One explicit evaluation costs 6 inverse FFTs (u, v and q of both layers) and 4 forward
ones (the fluxes), as in pyqg; every layer of every member is an independent slab of
the FFT loop, so a single member already runs its two layers in parallel.
"""
import numba
import numpy as np
from numba import prange

from .. import fft
from ..diagnostics import shell_sum, spectral_mean_square

LAYERS = 2


# Kernels work on one member or one layer of it: complex spectra as float views
# ([2,] ny, 2 (nx//2+1)), physical fields (ny, nx); per-wavenumber coefficients are
# interleaved like the spectra, (ny, 2 (nx//2+1)) with each value twice (for the real
# and imaginary parts), so that the loops vectorise.

@numba.njit(cache=True)
def _streamfunction(q, a00, a01, a10, a11, psi):
    """psi = A q per wavenumber, both layers (2, ny, 2 nxh)."""
    ny, width = q.shape[1], q.shape[2]
    for i in range(ny):
        q0, q1, p0, p1 = q[0, i], q[1, i], psi[0, i], psi[1, i]
        b00, b01, b10, b11 = a00[i], a01[i], a10[i], a11[i]
        for k in range(width):
            p0[k] = b00[k] * q0[k] + b01[k] * q1[k]
            p1[k] = b10[k] * q0[k] + b11[k] * q1[k]


@numba.njit(cache=True)
def _velocity_spectra(psi, kx, ky, u_hat, v_hat):
    """u_hat = -il psi, v_hat = ik psi for one layer (ny, 2 nxh); ``kx`` interleaved."""
    ny, nxh = psi.shape[0], psi.shape[1] // 2
    for i in range(ny):
        l, p, u, v = ky[i], psi[i], u_hat[i], v_hat[i]
        for j in range(nxh):
            pr, pi, k = p[2 * j], p[2 * j + 1], kx[2 * j]
            u[2 * j] = l * pi
            u[2 * j + 1] = -l * pr
            v[2 * j] = -k * pi
            v[2 * j + 1] = k * pr


@numba.njit(cache=True)
def _copy(src, dst):
    """dst = src, (ny, n) arrays."""
    for i in range(src.shape[0]):
        for k in range(src.shape[1]):
            dst[i, k] = src[i, k]


@numba.njit(cache=True)
def _fluxes(u, v, q, U, inv_n):
    """In place for one layer (ny, nx): u <- (u/N + U) q/N, v <- (v/N) (q/N), from
    unnormalised inverse transforms (pyqg's normalised u, v, q and its products)."""
    ny, nx = u.shape
    for i in range(ny):
        ur, vr, qr = u[i], v[i], q[i]
        for j in range(nx):
            qj = qr[j] * inv_n
            ur[j] = (ur[j] * inv_n + U) * qj
            vr[j] = (vr[j] * inv_n) * qj


@numba.njit(cache=True)
def _tendency(uq_hat, vq_hat, psi, kx, ky, kq, mask, drag, out, update, q, n1, n2, tendency, has_tendency,
              c0, c1, c2, filt):
    """out = -(ik uq_hat + il vq_hat + ik beta psi) mask + drag psi for one layer (ny, 2 nxh),
    and with ``update`` the AB3 step of the layer row by row, while the row is in cache:
    out += tendency (with ``has_tendency``), then pyqg's q = filt (q + c0 out + c1 n1 + c2 n2).

    The tendency is computed as ``-i t mask + drag psi`` with ``t = (k uq_hat + l vq_hat) +
    k beta psi`` (pyqg's expression, rounding included).  ``kq = kx beta_layer``; ``drag``
    is ``r_ek kappa^2`` for the bottom layer and zero for the top one.
    """
    ny, width = out.shape
    for i in range(ny):
        l = ky[i]
        ua, va, pa, o, mk, dr = uq_hat[i], vq_hat[i], psi[i], out[i], mask[i], drag[i]
        for j in range(width // 2):
            re, im = 2 * j, 2 * j + 1
            k = kx[re]
            t_re = (k * ua[re] + l * va[re]) + kq[re] * pa[re]
            t_im = (k * ua[im] + l * va[im]) + kq[re] * pa[im]
            o[re] = mk[re] * t_im + dr[re] * pa[re]
            o[im] = mk[im] * -t_re + dr[im] * pa[im]
        if update:
            qr, r1, r2, fl = q[i], n1[i], n2[i], filt[i]
            if has_tendency:
                tr = tendency[i]
                for k in range(width):
                    o[k] += tr[k]
            for k in range(width):
                qr[k] = fl[k] * (qr[k] + c0 * o[k] + c1 * r1[k] + c2 * r2[k])


@numba.njit(cache=True)
def _slab(q, out, n1, n2, tendency, has_tendency, update, c0, c1, c2, filt, psi, kx, ky, kq, mask, drag, U, inv_n,
          execute, plans, a, b, u, v, q_phys):
    """One layer of one member, from its streamfunction ``psi`` to its tendency ``out``
    (and, with ``update``, its AB3 update).  Spectral arrays are float views (ny, 2 nxh),
    physical ones (ny, nx); ``a``, ``b``, ``u``, ``v``, ``q_phys`` are scratch."""
    inv_rows, inv_cols, fwd_rows, fwd_cols = plans[0], plans[1], plans[2], plans[3]
    _velocity_spectra(psi, kx, ky, a, b)
    fft.inverse_slab(execute, inv_rows, inv_cols, a.ctypes.data, u.ctypes.data)
    fft.inverse_slab(execute, inv_rows, inv_cols, b.ctypes.data, v.ctypes.data)
    _copy(q, a)
    fft.inverse_slab(execute, inv_rows, inv_cols, a.ctypes.data, q_phys.ctypes.data)
    _fluxes(u, v, q_phys, U, inv_n)
    fft.forward_slab(execute, fwd_rows, fwd_cols, u.ctypes.data, a.ctypes.data)
    fft.forward_slab(execute, fwd_rows, fwd_cols, v.ctypes.data, b.ctypes.data)
    _tendency(a, b, psi, kx, ky, kq, mask, drag, out, update, q, n1, n2, tendency, has_tendency, c0, c1, c2, filt)


@numba.njit(parallel=True, cache=True)
def _explicit(q, out, update, n1, n2, tendency, has_tendency, c0, c1, c2, filt, chunks,
              coefficients, kx, ky, kq, mean_flow, inv_n, execute, plans, psi, hats, physical):
    """The whole explicit term, slab by slab (:func:`_slab`), so that a slab's buffers
    stay in cache from its velocities to its tendency; with ``update``, also the held
    ``tendency`` and the AB3 update.  ``chunks = 0``: every member's streamfunction,
    then every (member, layer) slab in parallel; ``chunks > 0``: that many runs of
    members in parallel, member by member (:meth:`QG2Layer._chunks`).

    ``q``, ``out``, ``n1``, ``n2``, ``tendency``, ``psi``: float views (M, 2, ny, 2 nxh)
    (``tendency`` is read only with ``has_tendency``); ``coefficients``: (a00, a01, a10,
    a11, mask, drag of layer 1, drag of layer 2), interleaved (7, ny, 2 nxh), as are
    ``kx`` (2 nxh), ``kq`` (2, 2 nxh) and ``filt`` (ny, 2 nxh); ``hats``: (2, 2 M, ny,
    2 nxh) and ``physical``: (3, 2 M, ny, nx) scratch, per slab or per run;
    ``execute``: :data:`fft.EXECUTE`;
    ``plans``: single-threaded inverse and forward ``(rows, columns)`` pointers.
    """
    members = q.shape[0]
    if chunks == 0:
        # every (member, layer) slab in parallel, after every member's streamfunction
        for m in prange(members):
            _streamfunction(q[m], coefficients[0], coefficients[1], coefficients[2], coefficients[3], psi[m])
        for s in prange(2 * members):
            m, layer = s // 2, s % 2
            _slab(q[m, layer], out[m, layer], n1[m, layer], n2[m, layer], tendency[m, layer], has_tendency,
                  update, c0, c1, c2, filt, psi[m, layer], kx, ky, kq[layer], coefficients[4],
                  coefficients[5 + layer], mean_flow[layer], inv_n, execute, plans, hats[0, s], hats[1, s],
                  physical[0, s], physical[1, s], physical[2, s])
        return
    # ``chunks`` equal runs of members in parallel, each member whole (its streamfunction
    # still in cache for its slabs) with the run's scratch (reused, so it stays in cache)
    for c in prange(chunks):
        for m in range(c * members // chunks, (c + 1) * members // chunks):
            _streamfunction(q[m], coefficients[0], coefficients[1], coefficients[2], coefficients[3], psi[m])
            for layer in range(2):
                _slab(q[m, layer], out[m, layer], n1[m, layer], n2[m, layer], tendency[m, layer], has_tendency,
                      update, c0, c1, c2, filt, psi[m, layer], kx, ky, kq[layer], coefficients[4],
                      coefficients[5 + layer], mean_flow[layer], inv_n, execute, plans, hats[0, c], hats[1, c],
                      physical[0, c], physical[1, c], physical[2, c])


def interleave(coefficients):
    """(..., n) real per-wavenumber coefficients -> (..., 2 n), each value twice: the
    layout of a complex array's float view."""
    return np.repeat(coefficients, 2, axis=-1)


class QG2Layer:
    """Two-layer QG for an ensemble of ``members`` on ``grid``; keys as pyqg's ``QGModel``.

    ``params`` is the case's ``[equation]`` table: ``beta`` (1/(m s)), ``rd`` (m), ``delta``
    (H1/H2), ``H1`` (m), ``U1``, ``U2`` (m/s), ``rek`` (1/s), ``filterfac``.
    """

    name = "qg2layer"
    fields = ("q",)
    field_layers = {"q": LAYERS}
    # fields computed from the state, offered to plugins as inputs (derived_spectra)
    derived_fields = {"psi": LAYERS, "u": LAYERS, "v": LAYERS}
    state_dtype = np.complex128

    def __init__(self, grid, params, members, seed=0):
        self.grid = grid
        self.members = list(members)
        self.seed = int(seed)
        for key in ("beta", "rd", "delta", "H1", "U1", "U2", "rek"):
            setattr(self, key, float(params[key]))
        self.Hi = np.array([self.H1, self.H1 / self.delta])
        self.H = self.Hi.sum()
        self.F1 = self.rd**-2 / (1.0 + self.delta)
        self.F2 = self.delta * self.F1
        self.mean_flow = np.array([self.U1, self.U2])
        self.Qy = np.array([self.beta + self.F1 * (self.U1 - self.U2), self.beta - self.F2 * (self.U1 - self.U2)])
        self.transforms = fft.transforms(grid.shape)
        M = len(self.members)
        self.state_shape = (M, LAYERS) + grid.spectral_shape
        self.linear = np.zeros(grid.spectral_shape)
        self.mask = grid.nonlinear_mask()
        self.state_filter = grid.state_filter()
        self.inversion = self._inversion_matrix()
        kq = grid.kx[None, :] * self.Qy[:, None]  # k beta_j, (2, nx//2+1)
        drag = self.rek * grid.k2  # bottom layer only
        coefficients = interleave(np.stack(self.inversion + (self.mask, np.zeros_like(drag), drag)))
        # single-threaded plans: every (member, layer) slab runs on one thread, whatever the grid size
        serial = fft.transforms(grid.shape, threads=1)
        plans = np.array(serial.plans(False) + serial.plans(True), dtype=np.uint64)
        slabs = LAYERS * M
        self._psi = fft.empty(self.state_shape, np.complex128)
        self._filter = (None, interleave(self.linear))  # (AB3 filter, interleaved)
        hats = fft.empty((2, slabs) + grid.spectral_shape, np.complex128)
        physical = fft.empty((3, slabs) + grid.shape, np.float64)  # u, v, q of each slab
        self._constants = (coefficients, interleave(grid.kx), grid.ky, interleave(kq), self.mean_flow,
                           1.0 / grid.size, fft.EXECUTE, plans, self._psi.view(np.float64), hats.view(np.float64),
                           physical)

    def _inversion_matrix(self):
        """(a00, a01, a10, a11), each (ny, nx//2+1): psi_i = sum_j a_ij q_j; zero at kappa = 0."""
        k2 = self.grid.k2
        det = k2 * (k2 + self.F1 + self.F2)
        det_inv = np.divide(1.0, det, out=np.zeros_like(det), where=det != 0)
        return (-(k2 + self.F2) * det_inv, -self.F1 * det_inv, -self.F2 * det_inv, -(k2 + self.F1) * det_inv)

    # ---- the right-hand side -------------------------------------------------------

    def _run(self, q, out, update=False, n1=None, n2=None, tendency=None, coefficients=(0.0, 0.0, 0.0),
             filt=None):
        """Call :func:`_explicit` (buffers and constants fixed in ``__init__``)."""
        if filt is not None and filt is not self._filter[0]:
            self._filter = (filt, interleave(filt))
        out_f = out.view(np.float64)
        # the stepper hands the tendency as a flat float view (steppers.flat)
        held = out_f if tendency is None else tendency.view(np.float64).reshape(out_f.shape)
        _explicit(q.view(np.float64), out_f, update, out_f if n1 is None else n1.view(np.float64),
                  out_f if n2 is None else n2.view(np.float64), held, tendency is not None,
                  *coefficients, self._filter[1], self._chunks(q.shape[0]), *self._constants)

    @staticmethod
    def _chunks(members):
        """Parallel runs of whole members for :func:`_explicit`: one per thread when the
        members divide evenly among the threads, else 0 (parallel over (member, layer)
        slabs, which balances two layers of one member)."""
        threads = numba.get_num_threads()
        return threads if members >= threads and members % threads == 0 and members > 1 else 0

    def explicit(self, q, out):
        """out = the advective, beta and drag tendency of state q; 10 FFTs, no allocation."""
        self._run(q, out)

    def explicit_ab3(self, q, history, tendency, coefficients, filt):
        """One AB3 step of q in place (pyqg's update, with the filter ``filt``):
        ``history[0] = N(q) + tendency``, ``q = filt (q + c0 N0 + c1 N1 + c2 N2)``,
        member by member (see :class:`hybridsolver.steppers.AdamsBashforth3`)."""
        self._run(q, history[0], True, history[1], history[2], tendency, coefficients, filt)

    stochastic = False

    def add_noise(self, q, step, dt):
        """No stochastic forcing in this model."""

    # ---- fields and diagnostics ------------------------------------------------------

    def streamfunction(self, q):
        """Spectral streamfunction, a new (M, 2, ny, nx//2+1) array."""
        a00, a01, a10, a11 = self.inversion
        return np.stack([a00 * q[:, 0] + a01 * q[:, 1], a10 * q[:, 0] + a11 * q[:, 1]], axis=1)

    def _physical(self, x_hat):
        """(M, 2, ny, nx) physical fields from (M, 2, ny, nx//2+1) spectra."""
        flat = self.transforms.to_physical(x_hat.reshape((-1,) + self.grid.spectral_shape))
        return flat.reshape(x_hat.shape[:2] + self.grid.shape)

    def to_fields(self, q):
        """{'q': (M, 2, ny, nx)} physical PV anomaly (1/s)."""
        return {"q": self._physical(q)}

    def from_fields(self, fields):
        """State from {'q': (M, 2, ny, nx)}."""
        q = np.asarray(fields["q"], dtype=np.float64)
        flat = self.transforms.to_spectral(q.reshape((-1,) + self.grid.shape))
        return flat.reshape(q.shape[:2] + self.grid.spectral_shape)

    def spectral_fields(self, q):
        """{'q': q}: the state's fields in spectral space (views)."""
        return {"q": q}

    def from_spectral_fields(self, fields):
        """State from {'q': (M, 2, ny, nx//2+1) complex}."""
        return np.asarray(fields["q"], dtype=np.complex128)

    def derived_spectra(self, q, names):
        """Spectra of the derived fields among ``names``, each a new (M, 2, ny, nx//2+1)
        array: ``psi`` (m^2/s), ``u = -psi_y`` and ``v = psi_x`` (m/s, without U_j), with
        the wavenumbers of the advection (pyqg's ``ph``, ``uh``, ``vh``)."""
        wanted = [n for n in names if n in self.derived_fields]
        if not wanted:
            return {}
        psi = self.streamfunction(q)
        spectra = {"psi": psi}
        if "u" in wanted or "v" in wanted:
            spectra["u"], spectra["v"] = self._velocity_spectra(psi)
        return {n: spectra[n] for n in wanted}

    def spectral_operator(self, name):
        """``(A, offset)``: the spectrum of field ``name`` (``q``, ``psi``, ``u``, ``v``), layer
        ``i``, is ``sum_j A[i, j] q_j``; ``A`` (2, 2, ny, nx//2+1) complex, ``offset`` (2,) zero."""
        g = self.grid
        if name == "q":
            operator = np.broadcast_to(np.eye(LAYERS)[:, :, None, None], (LAYERS, LAYERS) + g.spectral_shape)
        else:
            a00, a01, a10, a11 = self.inversion
            operator = np.array([[a00, a01], [a10, a11]], dtype=np.complex128)
            operator *= {"psi": 1.0, "u": -1j * g.ky[:, None], "v": 1j * g.kx[None, :]}[name]
        return operator, np.zeros(LAYERS)

    def derivative_wavenumbers(self):
        """``(ky (ny, 1), kx (1, nx//2+1))`` of the derivatives the host takes for plugins
        (hybridsolver.plugin.operators): pyqg's ``l``, ``k``, Nyquist wavenumbers kept."""
        return self.grid.ky[:, None], self.grid.kx[None, :]

    def _velocity_spectra(self, psi):
        """(u_hat, v_hat) = (-il psi, ik psi), new arrays of psi's shape."""
        g = self.grid
        return -1j * g.ky[:, None] * psi, 1j * g.kx * psi

    def velocity(self, q, psi=None):
        """Physical velocity anomalies ``(u, v)``, each (M, 2, ny, nx) (m/s), without U_j
        (``psi``: the state's :meth:`streamfunction`, if already at hand)."""
        u_hat, v_hat = self._velocity_spectra(self.streamfunction(q) if psi is None else psi)
        return self._physical(u_hat), self._physical(v_hat)

    def diagnostics(self, q, dt):
        """Per-member scalars, each (M,), in pyqg's conventions.

        ``ke_1``, ``ke_2``: kinetic energy of each layer, ``<u_j^2 + v_j^2>/2`` of the
        physical velocity anomalies (pyqg's ``EKE``, m^2/s^2); ``ke``: the height-weighted
        mean from the spectrum, Nyquist modes included (pyqg's ``_calc_ke``); ``ape``:
        ``F1 H1/H <(psi1 - psi2)^2>/2`` of the physical streamfunctions (the APE of
        pyqg's ``APEflux``); ``energy = ke + ape``; ``cfl``: pyqg's
        ``dt max(|u + U_j|, |v|) / dx``.
        """
        g = self.grid
        psi = self.streamfunction(q)
        u, v = self.velocity(q, psi)
        ke_layers = 0.5 * (u**2 + v**2).mean(axis=(2, 3))
        ke = sum(self.Hi[j] * 0.5 * spectral_mean_square(np.abs(psi[:, j]) ** 2 * g.k2, g) for j in range(LAYERS))
        ke = ke / self.H
        p = self._physical(psi)
        ape = 0.5 * self.F1 * self.Hi[0] / self.H * ((p[:, 0] - p[:, 1]) ** 2).mean(axis=(1, 2))
        speed = np.maximum(np.abs(u + self.mean_flow[None, :, None, None]), np.abs(v))
        return {"ke_1": ke_layers[:, 0], "ke_2": ke_layers[:, 1], "ke": ke, "ape": ape, "energy": ke + ape,
                "cfl": dt * speed.max(axis=(1, 2, 3)) / g.dx}

    def spectra(self, q):
        """Isotropic kinetic energy spectra of each layer, ``ke_spectrum_1``/``_2`` (M, nshell),
        shells of :meth:`Grid.shells`; summed over shells they give each layer's kinetic
        energy of the modes inside the inscribed circle."""
        g = self.grid
        psi = self.streamfunction(q)
        return {f"ke_spectrum_{j + 1}": 0.5 * shell_sum(np.abs(psi[:, j]) ** 2 * g.k2, g) for j in range(LAYERS)}
