"""FFTW plans for ensemble real transforms.

Every transform is planned once per grid shape *for a single member* (FFTW_MEASURE,
wisdom cached on disk) and executed member by member from a numba loop through
FFTW's new-array interface.  Because every member goes through the same plan, a
member's bits do not depend on how many other members run beside it, which is the
reproducibility contract of DESIGN.md section 4.  FFTW picks different algorithms
for different batch sizes, so one batched plan per ensemble size would break it.

A 2D transform is done as two batched 1D transforms: real transforms of the rows (along
x), then complex transforms of the columns (along y).  This lets a forward transform
stop after the first ``columns`` columns when only those are needed (the 2/3 rule keeps
about a third of them), and on this machine the split plans are as fast as FFTW's 2D
plans or faster.

The FFTW library is the one shipped inside pyFFTW's wheel (``pyfftw.libs``), loaded
with ctypes; numba kernels call FFTW's new-array execute functions through their
addresses (:data:`EXECUTE`), without the GIL, and stay cacheable on disk.
Small grids run members in parallel (one thread per member); grids of at least
``THREADED_POINTS`` points use FFTW plans threaded over numba's thread count
(``NUMBA_NUM_THREADS``), members in turn.  The thread policy depends on the grid shape
and that setting only, never on the ensemble size.

Transforms are unnormalised both ways (FFTW convention): ``inverse(forward(x)) ==
N * x`` with N the number of grid points.  The inverse destroys its input.
"""
import ctypes
import glob
import os
import threading

import numba
import numpy as np
import pyfftw
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

ALIGNMENT = 64
THREADED_POINTS = 1 << 16

_MEASURE = 0
_DESTROY_INPUT = 1
_UNALIGNED = 2


def _load_fftw():
    """Load libfftw3 and its OpenMP threads library from pyFFTW's wheel."""
    libdir = os.path.join(os.path.dirname(pyfftw.__file__), os.pardir, "pyfftw.libs")
    found = sorted(glob.glob(os.path.join(libdir, "libfftw3-*.so*")))
    omp = sorted(glob.glob(os.path.join(libdir, "libfftw3_omp-*.so*")))
    if found:
        core = ctypes.CDLL(found[0], mode=ctypes.RTLD_GLOBAL)
        threads = ctypes.CDLL(omp[0], mode=ctypes.RTLD_GLOBAL) if omp else None
    else:  # pyFFTW built against a system FFTW
        core = ctypes.CDLL("libfftw3.so.3", mode=ctypes.RTLD_GLOBAL)
        try:
            threads = ctypes.CDLL("libfftw3_omp.so.3", mode=ctypes.RTLD_GLOBAL)
        except OSError:
            threads = None
    return core, threads


_lib, _threads_lib = _load_fftw()
_vp, _int, _uint = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint
_intp = ctypes.POINTER(ctypes.c_int)
_MANY = [_int, _intp, _int, _vp, _intp, _int, _int, _vp, _intp, _int, _int]
for _name, _extra in (("fftw_plan_many_dft_r2c", []), ("fftw_plan_many_dft_c2r", []), ("fftw_plan_many_dft", [_int])):
    getattr(_lib, _name).restype = _vp
    getattr(_lib, _name).argtypes = _MANY + _extra + [_uint]
_lib.fftw_import_wisdom_from_filename.argtypes = [ctypes.c_char_p]
_lib.fftw_import_wisdom_from_filename.restype = _int
_lib.fftw_export_wisdom_to_filename.argtypes = [ctypes.c_char_p]
_lib.fftw_export_wisdom_to_filename.restype = _int
_exec_r2c = _lib.fftw_execute_dft_r2c
_exec_c2r = _lib.fftw_execute_dft_c2r
_exec_dft = _lib.fftw_execute_dft
if _threads_lib is not None:
    _threads_lib.fftw_init_threads()
    _threads_lib.fftw_plan_with_nthreads.argtypes = [_int]


@intrinsic
def _execute(typingctx, function, plan, src, dst):
    """Call the C function at address ``function`` as ``void(plan, src, dst)`` (all
    uint64).  The address is a run-time value, so kernels calling FFTW this way can be
    cached on disk (``cache=True``), unlike kernels calling ctypes functions."""
    signature = types.void(types.uint64, types.uint64, types.uint64, types.uint64)

    def codegen(context, builder, sig, args):
        i64 = ir.IntType(64)
        pointer = builder.inttoptr(args[0], ir.FunctionType(ir.VoidType(), [i64] * 3).as_pointer())
        builder.call(pointer, list(args[1:]))
        return context.get_dummy_value()

    return signature, codegen


def _address(function):
    return ctypes.cast(function, ctypes.c_void_p).value


# Addresses of FFTW's new-array execute functions (r2c, c2r, dft): the ``execute``
# argument of forward_slab, inverse_slab and the kernels calling them.
EXECUTE = np.array([_address(f) for f in (_exec_r2c, _exec_c2r, _exec_dft)], dtype=np.uint64)


@numba.njit(cache=True)
def forward_slab(execute, rows, columns, src, dst):
    """One member's forward transform from address ``src`` (real) to ``dst`` (complex):
    real row transforms, then column transforms in place (a zero columns plan, for 1D
    grids, is skipped).  ``execute`` is :data:`EXECUTE`; plans and addresses are uint64."""
    _execute(execute[0], rows, src, dst)
    if columns:
        _execute(execute[2], columns, dst, dst)


@numba.njit(cache=True)
def inverse_slab(execute, rows, columns, src, dst):
    """One member's unnormalised inverse from address ``src`` (complex, destroyed) to
    ``dst`` (real): column transforms in place, then real row transforms."""
    if columns:
        _execute(execute[2], columns, src, src)
    _execute(execute[1], rows, src, dst)


@numba.njit(cache=True)
def _run_member(execute, forward, rows, columns, src, dst, m):
    s = src.ctypes.data + numba.uint64(m * src.strides[0])
    d = dst.ctypes.data + numba.uint64(m * dst.strides[0])
    if forward:
        forward_slab(execute, rows, columns, s, d)
    else:
        inverse_slab(execute, rows, columns, s, d)


@numba.njit(parallel=True, cache=True)
def _members_parallel(execute, forward, rows, columns, src, dst):
    """The transform of every member (leading axis), members in parallel.  The caller
    checks shapes and alignment."""
    for m in numba.prange(src.shape[0]):
        _run_member(execute, forward, rows, columns, src, dst, m)


@numba.njit(cache=True)
def _members_serial(execute, forward, rows, columns, src, dst):
    """The transform of every member in turn (for threaded plans)."""
    for m in range(src.shape[0]):
        _run_member(execute, forward, rows, columns, src, dst, m)


_plan_lock = threading.Lock()
_plans = {}
_wisdom_loaded = False


def wisdom_path():
    """File holding cached FFTW wisdom (``HYBRIDSOLVER_FFTW_WISDOM`` overrides)."""
    default = os.path.join(os.path.expanduser("~"), ".cache", "hybridsolver", "fftw_wisdom")
    return os.environ.get("HYBRIDSOLVER_FFTW_WISDOM", default)


def _load_wisdom():
    global _wisdom_loaded
    if not _wisdom_loaded:
        path = wisdom_path()
        if os.path.exists(path):
            _lib.fftw_import_wisdom_from_filename(path.encode())
        _wisdom_loaded = True


def _save_wisdom():
    path = wisdom_path()
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        if _lib.fftw_export_wisdom_to_filename(tmp.encode()):
            os.replace(tmp, path)
    except OSError:
        pass  # an unwritable cache only costs planning time next run


def empty(shape, dtype):
    """An uninitialised array aligned for FFTW (every ensemble buffer uses this)."""
    return pyfftw.empty_aligned(shape, dtype=dtype, n=ALIGNMENT)


def float_view(a):
    """Float64 view ``(..., 2 n)`` of a complex128 array ``(..., n)``, as (re, im) pairs.

    Numba kernels take spectra this way: it vectorises real arithmetic far better than
    complex arithmetic.  Arrays with more than three axes (layered states
    ``(M, layers, ny, n)``) are viewed as ``(M layers, ny, 2 n)``, so kernels written for
    ``(M, ny, 2 n)`` with per-row coefficients apply to every layer.
    """
    f = a.view(np.float64)
    return f.reshape((-1,) + f.shape[-2:]) if f.ndim > 3 else f


def zeros(shape, dtype):
    out = empty(shape, dtype)
    out[...] = 0
    return out


def spectral_shape(shape):
    """Shape of the half-complex spectrum of a real field of ``shape``."""
    return tuple(shape[:-1]) + (shape[-1] // 2 + 1,)


def _plan(kind, shape, threads, columns=0):
    """Plan (and cache) one single-member batch of 1D transforms; returns its pointer.

    ``rows_r2c``/``rows_c2r``: the real transforms along the last axis of every row;
    ``columns_forward``/``columns_backward``: in-place complex transforms along the
    first axis of the first ``columns`` columns of a 2D half spectrum.
    """
    key = (kind, tuple(shape), threads, columns)
    with _plan_lock:
        if key in _plans:
            return _plans[key]
        _load_wisdom()
        real = empty((2,) + tuple(shape), np.float64)
        cplx = empty((2,) + spectral_shape(shape), np.complex128)
        flags = _MEASURE | _DESTROY_INPUT
        if real[1].ctypes.data % ALIGNMENT or cplx[1].ctypes.data % ALIGNMENT:
            flags |= _UNALIGNED  # member slabs are not all 64-byte aligned
        if _threads_lib is not None:
            _threads_lib.fftw_plan_with_nthreads(threads)
        n, nh = shape[-1], shape[-1] // 2 + 1
        rows = int(np.prod(shape[:-1]))
        r, c = real.ctypes.data, cplx.ctypes.data
        if kind == "rows_r2c":
            plan = _lib.fftw_plan_many_dft_r2c(1, (_int * 1)(n), rows, r, None, 1, n, c, None, 1, nh, flags)
        elif kind == "rows_c2r":
            plan = _lib.fftw_plan_many_dft_c2r(1, (_int * 1)(n), rows, c, None, 1, nh, r, None, 1, n, flags)
        else:
            sign = -1 if kind == "columns_forward" else 1
            plan = _lib.fftw_plan_many_dft(1, (_int * 1)(shape[0]), columns, c, None, nh, 1, c, None, nh, 1,
                                           sign, flags)
        if not plan:
            raise RuntimeError(f"FFTW could not plan {kind} for shape {shape}")
        _plans[key] = plan
        _save_wisdom()
        return plan


class RealTransforms:
    """Real FFTs over the trailing axes of ensemble arrays (1D or 2D grids).

    Physical arrays are float64 ``(M, *shape)``; spectral arrays complex128
    ``(M, *spectral_shape(shape))``; both C-contiguous and allocated with :func:`empty`.
    """

    def __init__(self, shape, threads=None):
        if len(shape) not in (1, 2):
            raise ValueError(f"transforms are for 1D or 2D grids, got shape {shape}")
        self.shape = tuple(int(n) for n in shape)
        self.spectral_shape = spectral_shape(self.shape)
        self.size = int(np.prod(self.shape))
        # numba's thread count (NUMBA_NUM_THREADS, default: the CPUs this process may use)
        if threads is None:
            threads = numba.config.NUMBA_NUM_THREADS if self.size >= THREADED_POINTS else 1
        self.threads = int(threads)
        self._rows = {kind: _plan(kind, self.shape, self.threads) for kind in ("rows_r2c", "rows_c2r")}
        self._columns = {}

    def _columns_plan(self, kind, columns):
        """Columns plan, or 0 for 1D grids."""
        if len(self.shape) == 1:
            return 0
        key = (kind, columns)
        if key not in self._columns:
            self._columns[key] = _plan(kind, self.shape, self.threads, columns)
        return self._columns[key]

    def plans(self, forward, columns=None):
        """``(rows, columns)`` plan pointers (uint64) for :func:`forward_slab` /
        :func:`inverse_slab` (all columns unless ``columns``; 0 for 1D grids)."""
        n_columns = self.spectral_shape[-1]
        columns = n_columns if columns is None else min(int(columns), n_columns)
        rows = self._rows["rows_r2c" if forward else "rows_c2r"]
        cols = self._columns_plan("columns_forward" if forward else "columns_backward", columns)
        return np.uint64(rows), np.uint64(cols)

    def bind(self, forward, src, dst, columns=None):
        """A no-argument function running one transform on these arrays, checked once.

        ``forward=True``: ``dst = rfftn(src)`` (only the first ``columns`` columns with
        ``columns``); ``False``: ``dst = N irfftn(src)``, overwriting src.  Hot loops bind
        their buffers once and skip the per-call checks.
        """
        real, cplx = (src, dst) if forward else (dst, src)
        if (real.dtype != np.float64 or cplx.dtype != np.complex128 or real.shape[1:] != self.shape
                or cplx.shape != real.shape[:1] + self.spectral_shape
                or not (real.flags.c_contiguous and cplx.flags.c_contiguous)):
            raise ValueError(f"expected C-contiguous (M, {self.shape}) float64 and "
                             f"(M, {self.spectral_shape}) complex128, got {real.shape} {real.dtype} "
                             f"and {cplx.shape} {cplx.dtype}")
        if real.ctypes.data % ALIGNMENT or cplx.ctypes.data % ALIGNMENT:
            raise ValueError(f"arrays must be {ALIGNMENT}-byte aligned (allocate with fft.empty)")
        rows, cols = self.plans(forward, columns)
        # members in parallel only where the plans themselves are single-threaded
        run = _members_parallel if self.threads == 1 and src.shape[0] > 1 else _members_serial
        return lambda: run(EXECUTE, forward, rows, cols, src, dst)

    def forward(self, x, out, columns=None):
        """out[m] = rfftn(x[m]) for every member (unnormalised).

        With ``columns`` (2D grids), only ``out[:, :, :columns]`` is the transform; the
        other columns hold row transforms only.
        """
        self.bind(True, x, out, columns)()

    def inverse(self, x_hat, out):
        """out[m] = N * irfftn(x_hat[m]) for every member; x_hat is overwritten."""
        self.bind(False, x_hat, out)()

    def to_physical(self, x_hat):
        """A new normalised physical array from a spectral one (input kept)."""
        scratch = empty(x_hat.shape, np.complex128)
        scratch[...] = x_hat
        out = empty((x_hat.shape[0],) + self.shape, np.float64)
        self.inverse(scratch, out)
        out *= 1.0 / self.size
        return out

    def to_spectral(self, x):
        """A new spectral array from a physical one (input kept)."""
        src = empty(x.shape, np.float64)
        src[...] = x
        out = empty((x.shape[0],) + self.spectral_shape, np.complex128)
        self.forward(src, out)
        return out


_transforms = {}


def transforms(shape, threads=None):
    """The shared :class:`RealTransforms` for a grid shape (planned once per process).

    ``threads`` fixes the plans' thread count; by default it follows the grid size
    (``THREADED_POINTS``).
    """
    key = (tuple(int(n) for n in shape), threads)
    if key not in _transforms:
        _transforms[key] = RealTransforms(key[0], threads)
    return _transforms[key]
