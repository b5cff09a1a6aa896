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


@numba.njit(parallel=True, cache=True)
def _derivative(src, operator, last, dst):
    """``dst[r, l] = operator * src[r, l]`` for the (R, L, ny, nh) spectra ``src``, each
    first projected onto a real field's spectrum (its columns 0 and ``last`` = nh-1, or 0
    for odd nx, made Hermitian in ky)."""
    rows, layers, ny, nh = src.shape
    for n in numba.prange(rows * layers * ny):
        r, l, i = n // (layers * ny), (n // ny) % layers, n % ny
        partner = (ny - i) % ny
        for j in range(nh):
            value = src[r, l, i, j]
            if j == 0 or j == last:
                value = 0.5 * (value + np.conj(src[r, l, partner, j]))
            dst[r, l, i, j] = operator[i, j] * value


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
    return "derivative" in entry or "form" in entry


class PhysicalTransforms:
    """The physical inputs and operator outputs of one artifact hook, through the host's
    FFTW plans into buffers kept between calls.

    ``inputs`` and ``outputs`` are the manifest's entries, ``layers(field)`` a field's
    channel count (its layers, or 1).
    """

    def __init__(self, equation, inputs, outputs, layers):
        grid = equation.grid
        self.nx, self.size, self.dims = grid.shape[-1], grid.size, len(grid.shape)
        self.transforms = equation.transforms
        self.layers = layers
        ky = kx = None
        if any("derivative" in e for e in inputs) or any(is_operator_output(e) for e in outputs):
            ky, kx = equation.derivative_wavenumbers()
            self.ikx, self.iky = 1j * kx[0], 1j * ky[:, 0]
        self.last = _boundary_columns(self.nx, grid.spectral_shape[-1])[1]
        # inputs: the inverse transform's 1/N folded into the operators
        self.input_operators = [derivative_operator(e["derivative"], ky, kx) / self.size if "derivative" in e
                                else None for e in inputs]
        self.outputs = [(e["field"], e.get("form"), derivative_operator(e["derivative"], ky, kx)
                         if "derivative" in e else None) for e in outputs]
        self.output_fields = list(dict.fromkeys(e["field"] for e in outputs))
        self._buffers, self._bound_plans = {}, {}

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

    def physical_inputs(self, spectra):
        """The module input (rows, C, ny, nx) float64 of the input fields' spectra
        (``spectra``: one (rows, [layers,] ny, nx//2+1) array per manifest input), derivatives
        taken.  The array is the hook's buffer, overwritten by the next call."""
        arrays = [s.reshape((s.shape[0], -1) + s.shape[s.ndim - self.dims:]) for s in spectra]
        rows, channels = arrays[0].shape[0], sum(a.shape[1] for a in arrays)
        hat = self._buffer("in_hat", (rows, channels) + self.transforms.spectral_shape, np.complex128)
        c = 0
        for a, operator in zip(arrays, self.input_operators):
            part = hat[:, c:c + a.shape[1]]
            if operator is None:
                np.multiply(a, 1.0 / self.size, out=part)
            else:
                _derivative(a, operator, self.last, part)
            c += a.shape[1]
        out = self._buffer("in", (rows, channels) + self.transforms.shape, np.float64)
        self._bound(False, hat, out)()
        return out

    def output_spectra(self, out):
        """{field: tendency spectrum (rows, [layers,] ny, nx//2+1)} of the module's physical
        output ``out`` (rows, C_out, ny, nx) under the outputs' operators."""
        real = self._buffer("out", out.shape, np.float64)
        real[...] = out
        hat = self._buffer("out_hat", out.shape[:2] + self.transforms.spectral_shape, np.complex128)
        self._bound(True, real, hat)()
        spectra = {f: np.zeros((out.shape[0], self.layers(f)) + hat.shape[2:], np.complex128)
                   for f in self.output_fields}
        c = 0
        for field, form, operator in self.outputs:
            n, target = self.layers(field), spectra[field]
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
        return {f: s if self.layers(f) > 1 else s[:, 0] for f, s in spectra.items()}


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
