"""Spectral operators the host applies around a plugin: derivative inputs and operator outputs.

A closure's arithmetic is mostly transforms and derivatives; the host does those with
its FFTW plans and hands the module only the pointwise work (DESIGN.md section 6).
Manifest entries in physical space may carry

- on an input, ``"derivative"``: the module gets the physical field of that derivative of
  the field, ``D f`` with ``D`` a monomial of ``x``/``y`` letters (``"x"``, ``"xy"``,
  ``"yyyy"``) or a dict of monomials and coefficients (``{"xx": 1, "yy": 1}``, the
  Laplacian);
- on a ``tendency`` output, ``"derivative"`` (the same): the field's tendency is ``D c``
  of the output channel ``c``; or ``"form": "stress"``: the channels are a symmetric
  tensor ``(T_xx, T_xy, T_yy)`` (per layer, in that order), the momentum forcing
  ``f = div T`` is formed as a real velocity field and the field's tendency is its curl
  ``d f_v/dx - d f_u/dy`` (pyqg's velocity parameterizations).  Entries naming the same
  field add up.

Derivatives are spectral, ``d/dx -> i kx``, with the equation's
``derivative_wavenumbers``.  Every derivative is of a real field: a spectrum is projected
onto the spectra of real fields before an operator acts on it (the columns ``kx = 0``
and, for even ``nx``, ``kx = nx/2`` made Hermitian in ``ky``), as a round trip through
physical space would do: the derivatives are pyqg's to round-off.
"""
import numba
import numpy as np

from .. import fft
from .manifest import PluginError


def derivative_operator(spec, ky, kx):
    """The complex multiplier (ny, nx//2+1) of a derivative ``spec`` (a monomial string of
    ``x``/``y`` or {monomial: coefficient}) with wavenumbers ``ky`` (ny, 1), ``kx`` (1, nx//2+1)."""
    terms = {spec: 1.0} if isinstance(spec, str) else spec
    operator = np.zeros((ky.shape[0], kx.shape[1]), np.complex128)
    for monomial, coefficient in terms.items():
        operator += coefficient * (1j * kx) ** monomial.count("x") * (1j * ky) ** monomial.count("y")
    return operator


def _boundary_columns(nx, nh):
    """The columns a real field's spectrum constrains to be Hermitian in ky: 0 and the x-Nyquist."""
    return (0, nh - 1) if nx % 2 == 0 else (0, 0)


def real_field_operator(operator, shape):
    """The operator ``A`` (..., ny, nx//2+1) or (..., nx//2+1) on a grid of ``shape`` whose
    product with the spectrum of a real field ``f`` is the spectrum of the real field
    nearest to ``A f``: its boundary columns (kx = 0 and the x-Nyquist) made Hermitian in
    ky, ``(A(ky) + conj A(-ky)) / 2`` (on 1D grids: those coefficients made real).  A new array."""
    a = np.array(operator, dtype=np.complex128)
    columns = set(_boundary_columns(shape[-1], shape[-1] // 2 + 1))
    if len(shape) == 1:
        for k in columns:
            a[..., k] = a[..., k].real
        return a
    partner = (-np.arange(shape[0])) % shape[0]
    for column in columns:
        c = a[..., column]
        c[...] = 0.5 * (c + np.conj(c[..., partner]))
    return a


@numba.njit(parallel=True, cache=True)
def _gather(state, weights, offsets, channels, hat):
    """``hat[r, channels[k]] = sum_l weights[k, l] state[r, l] (+ offsets[k] at wavenumber 0)``:
    the spectra of all input channels from the state (R, L, P) in one pass; ``weights``
    (K, L, P), ``offsets`` (K,) complex, ``hat`` (R, C, P).  One (row, channel) per task,
    the points innermost (contiguous, vectorised); each value sums its terms in the order
    offset, layer 0, 1, ..."""
    rows, layers, points = state.shape
    count = channels.shape[0]
    for n in numba.prange(rows * count):
        r, k = n // count, n % count
        out, w, s = hat[r, channels[k]], weights[k, 0], state[r, 0]
        out[0] = offsets[k] + w[0] * s[0]
        for p in range(1, points):
            out[p] = 0.0j + w[p] * s[p]
        for layer in range(1, layers):
            w, s = weights[k, layer], state[r, layer]
            for p in range(points):
                out[p] += w[p] * s[p]


@numba.njit(parallel=True, cache=True)
def _add_derivative(src, operator, dst):
    """``dst += operator * src`` for (R, L, ny, nh) spectra."""
    rows, layers, ny, nh = src.shape
    for n in numba.prange(rows * layers * ny):
        r, l, i = n // (layers * ny), (n // ny) % layers, n % ny
        for j in range(nh):
            dst[r, l, i, j] += operator[i, j] * src[r, l, i, j]


@numba.njit(parallel=True, cache=True)
def _add_stress_curl(txx, txy, tyy, ikx, iky, last, dst):
    """``dst += i kx f_v - i ky f_u`` for the stress spectra ``txx``, ``txy``, ``tyy``
    (R, L, ny, nh), with ``f_u = i kx Txx + i ky Txy`` and ``f_v = i kx Txy + i ky Tyy``
    projected as in :func:`_derivative`; ``ikx`` (nh,), ``iky`` (ny,) complex."""
    rows, layers, ny, nh = dst.shape
    for n in numba.prange(rows * layers * ny):
        r, l, i = n // (layers * ny), (n // ny) % layers, n % ny
        p = (ny - i) % ny
        for j in range(nh):
            f_u = ikx[j] * txx[r, l, i, j] + iky[i] * txy[r, l, i, j]
            f_v = ikx[j] * txy[r, l, i, j] + iky[i] * tyy[r, l, i, j]
            if j == 0 or j == last:
                f_u = 0.5 * (f_u + np.conj(ikx[j] * txx[r, l, p, j] + iky[p] * txy[r, l, p, j]))
                f_v = 0.5 * (f_v + np.conj(ikx[j] * txy[r, l, p, j] + iky[p] * tyy[r, l, p, j]))
            dst[r, l, i, j] += ikx[j] * f_v - iky[i] * f_u


def is_operator_output(entry):
    """True for a manifest output entry the host finishes (``derivative`` or ``form``)."""
    return "derivative" in entry or "form" in entry


class PhysicalTransforms:
    """The physical inputs and operator outputs of one artifact hook, through the host's
    FFTW plans into buffers kept between calls.

    ``inputs`` and ``outputs`` are the manifest's entries, ``layers(field)`` a field's
    channel count (its layers, or 1).
    """

    def __init__(self, equation, inputs, outputs, layers):
        grid = equation.grid
        self.nx, self.size = grid.shape[-1], grid.size
        self.transforms = equation.transforms
        self.layers = {e["field"]: layers(e["field"]) for e in outputs}  # output channels per field
        ky = kx = None
        if any("derivative" in e for e in inputs) or any(is_operator_output(e) for e in outputs):
            ky, kx = equation.derivative_wavenumbers()
            self.ikx, self.iky = 1j * kx[0], 1j * ky[:, 0]
        self.last = _boundary_columns(self.nx, grid.spectral_shape[-1])[1]
        self.inputs = self._input_operators(equation, inputs, ky, kx) if inputs[0]["space"] == "physical" else {}
        self.channels = sum(len(c) for _, _, c in self.inputs.values())
        self.outputs = [(e["field"], e.get("form"), derivative_operator(e["derivative"], ky, kx)
                         if "derivative" in e else None) for e in outputs]
        self.output_fields = list(dict.fromkeys(e["field"] for e in outputs))
        self._buffers, self._bound_plans = {}, {}

    def _input_operators(self, equation, inputs, ky, kx):
        """{source ("current" | "previous"): (weights (K, L, P), offsets (K,), channels (K,))}:
        each physical input channel's spectrum as a linear operator of the state (the
        field's ``equation.spectral_operator``, projected onto real fields, times the
        derivative), the inverse transform's 1/N folded in."""
        per_source = {}
        channel = 0
        for entry in inputs:
            operator, offset = equation.spectral_operator(entry["field"])
            operator, offset = real_field_operator(operator, self.transforms.shape), np.real(offset)
            factor = (derivative_operator(entry["derivative"], ky, kx) if "derivative" in entry
                      else np.ones(operator.shape[2:])) / self.size
            weights, offsets, channels = per_source.setdefault(entry.get("at", "current"), ([], [], []))
            for layer in range(operator.shape[0]):
                weights.append((factor * operator[layer]).reshape(operator.shape[1], -1))
                offsets.append(factor.reshape(-1)[0] * offset[layer])
                channels.append(channel)
                channel += 1
        return {source: (np.ascontiguousarray(w), np.array(o, np.complex128), np.array(c, np.int64))
                for source, (w, o, c) in per_source.items()}

    def _buffer(self, key, shape, dtype):
        """An aligned buffer, one per name and shape (the dry run's rows may differ)."""
        if (key, shape) not in self._buffers:
            self._buffers[key, shape] = fft.empty(shape, dtype)
        return self._buffers[key, shape]

    def _bound(self, forward, src, dst):
        """The FFTW transform of the slabs of ``src`` into ``dst`` (both (rows, C, ...)), bound once."""
        key = (forward, src.shape)  # src and dst are the buffers of that shape
        if key not in self._bound_plans:
            self._bound_plans[key] = self.transforms.bind(forward, src.reshape((-1,) + src.shape[2:]),
                                                          dst.reshape((-1,) + dst.shape[2:]))
        return self._bound_plans[key]

    def physical_inputs(self, states):
        """The module input (rows, C, ny, nx) float64 from the states ``{"current": (rows, ...),
        "previous": ...}`` (spectral, the equation's state layout): every channel's spectrum
        in one pass over each state, then one inverse transform of all.  The array is the
        hook's buffer, overwritten by the next call."""
        rows = next(iter(states.values())).shape[0]
        hat = self._buffer("in_hat", (rows, self.channels) + self.transforms.spectral_shape, np.complex128)
        flat = hat.reshape(rows, self.channels, -1)
        for source, (weights, offsets, channels) in self.inputs.items():
            _gather(states[source].reshape(rows, weights.shape[1], -1), weights, offsets, channels, flat)
        out = self._buffer("in", (rows, self.channels) + self.transforms.shape, np.float64)
        self._bound(False, hat, out)()
        return out

    def output_spectra(self, out):
        """{field: tendency spectrum (rows, [layers,] ny, nx//2+1)} of the module's physical
        output ``out`` (rows, C_out, ny, nx) under the outputs' operators."""
        real = self._buffer("out", out.shape, np.float64)
        real[...] = out
        hat = self._buffer("out_hat", out.shape[:2] + self.transforms.spectral_shape, np.complex128)
        self._bound(True, real, hat)()
        spectra = {f: np.zeros((out.shape[0], self.layers[f]) + hat.shape[2:], np.complex128)
                   for f in self.output_fields}
        c = 0
        for field, form, operator in self.outputs:
            n, target = self.layers[field], spectra[field]
            if form == "stress":
                _add_stress_curl(hat[:, c:c + n], hat[:, c + n:c + 2 * n], hat[:, c + 2 * n:c + 3 * n], self.ikx,
                                 self.iky, self.last, target)
                c += 3 * n
            elif operator is None:
                target += hat[:, c:c + n]
                c += n
            else:
                _add_derivative(hat[:, c:c + n], operator, target)
                c += n
        return {f: s if self.layers[f] > 1 else s[:, 0] for f, s in spectra.items()}


def check_operators(manifest, equation, where):
    """Derivative inputs and operator outputs need physical space, a spectral-state
    equation (with ``derivative_wavenumbers``) and, for outputs, the tendency callsite."""
    uses = [e for e in manifest["inputs"] if "derivative" in e] + [e for e in manifest["outputs"]
                                                                  if is_operator_output(e)]
    if not uses:
        return
    if equation.state_dtype != np.complex128:
        raise PluginError(f"{where}: artifact entries with 'derivative' or 'form' need a spectral host; "
                          f"{equation.name} has a physical state")
    if any(e["space"] != "physical" for e in uses):
        raise PluginError(f"{where}: artifact entries with 'derivative' or 'form' are physical, field "
                          f"'{next(e for e in uses if e['space'] != 'physical')['field']}' is spectral")
    if any(is_operator_output(e) for e in manifest["outputs"]) and manifest["callsite"] != "tendency":
        raise PluginError(f"{where}: artifact outputs with 'derivative' or 'form' need callsite tendency, artifact "
                          f"callsite is '{manifest['callsite']}'")
