"""Per-member counter-based random streams (DESIGN.md section 4).

A stream is keyed by ``(seed, member, name)``: the Philox key is derived from those
three through numpy's SeedSequence, and the draw made at step ``s`` starts at
counter ``(0, 0, s, 0)``.  A member's draws therefore depend only on its own key and
the step count, never on the ensemble size, batching or the order of calls, and a
restarted run reproduces them from the step number alone.  Nothing uses global state.
"""
import functools
import threading
import zlib

import numpy as np


@functools.lru_cache(maxsize=1 << 16)
def stream_key(seed, member, name):
    """The 128-bit Philox key of stream ``name`` of ``member`` (two uint64, read-only:
    the keys are cached, deriving one costs more than the draws of a small step)."""
    tag = zlib.crc32(name.encode())
    key = np.random.SeedSequence([int(seed), int(member), tag]).generate_state(2, np.uint64)
    key.flags.writeable = False
    return key


def _counter(step):
    return np.array([0, 0, int(step), 0], dtype=np.uint64)


def generator(seed, member, name, step=0):
    """A new numpy Generator positioned at the start of ``step``'s draws of that stream."""
    return np.random.Generator(np.random.Philox(key=stream_key(int(seed), int(member), name), counter=_counter(step)))


_LOCAL = threading.local()


def _positioned(seed, member, name, step):
    """The thread's one reused Generator moved to the start of ``step``'s draws of that
    stream: the same draws as :func:`generator`'s at a third of the cost, for draws used
    at once."""
    shared = getattr(_LOCAL, "generator", None)
    if shared is None:
        shared = _LOCAL.generator = np.random.Generator(np.random.Philox())
    shared.bit_generator.state = {
        "bit_generator": "Philox",
        "state": {"counter": _counter(step), "key": stream_key(int(seed), int(member), name)},
        "buffer": np.zeros(4, dtype=np.uint64), "buffer_pos": 4, "has_uint32": 0, "uinteger": 0}
    return shared


def standard_normal(seed, members, name, step, shape, out=None):
    """Standard normal draws ``(len(members), *shape)``, one member stream per row."""
    if out is None:
        out = np.empty((len(members),) + tuple(shape))
    for row, member in enumerate(members):
        _positioned(seed, member, name, step).standard_normal(shape, out=out[row])
    return out


class SpectralWhiteNoise:
    """Real 2D FFTs of unit white noise, drawn directly in Fourier space.

    ``draw`` fills ``out[row]`` (half-complex ``(ny, nx//2+1)``) with a sample of the law
    of ``rfft2(xi)``, ``xi ~ N(0, 1)`` independently per grid point, on the modes where
    ``support`` is true (others are left untouched): free modes get
    ``sqrt(N/2) (a + i b)``; the self-conjugate columns (``p = 0`` and the Nyquist column)
    pair ``q`` with ``-q`` as complex conjugates, and their ``q = 0`` and Nyquist rows are
    real with variance N.  Coloured noise needs only the modes its colouring keeps, which
    is far cheaper than drawing and transforming N points.
    """

    def __init__(self, shape, support):
        ny, nx = shape
        nxh = nx // 2 + 1
        support = np.asarray(support, dtype=bool)
        self.size = ny * nx
        conj_columns = [0] + ([nxh - 1] if nx % 2 == 0 and nxh > 1 else [])
        free = support.copy()
        free[:, conj_columns] = False
        self.free = np.flatnonzero(free)
        pairs, mirrors, reals = [], [], []
        for j in conj_columns:
            for i in range(ny):
                mirror = (-i) % ny
                if not support[i, j] or mirror < i:
                    continue
                (reals if mirror == i else pairs).append(i * nxh + j)
                if mirror != i:
                    mirrors.append(mirror * nxh + j)
        self.pairs, self.mirrors, self.reals = (np.array(a, dtype=np.int64) for a in (pairs, mirrors, reals))
        self.count = 2 * len(self.free) + 2 * len(self.pairs) + len(self.reals)

    def draw(self, seed, members, name, step, out):
        """Fill ``out`` (complex ``(len(members), ny, nx//2+1)``) from each member's stream."""
        half = np.sqrt(self.size / 2)
        nf, npair = len(self.free), len(self.pairs)
        for row, member in enumerate(members):
            z = _positioned(seed, member, name, step).standard_normal(self.count)
            flat = out[row].reshape(-1)
            flat[self.free] = half * (z[:nf] + 1j * z[nf:2 * nf])
            paired = half * (z[2 * nf:2 * nf + npair] + 1j * z[2 * nf + npair:2 * nf + 2 * npair])
            flat[self.pairs] = paired
            flat[self.mirrors] = np.conj(paired)
            flat[self.reals] = np.sqrt(self.size) * z[2 * nf + 2 * npair:]
