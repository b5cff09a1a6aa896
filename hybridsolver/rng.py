"""Per-member counter-based random streams (DESIGN.md section 4).

A stream is keyed by ``(seed, member, name)``: the Philox key is derived from those
three through numpy's SeedSequence, and the draw made at step ``s`` starts at
counter ``(0, 0, s, 0)``.  A member's draws therefore depend only on its own key and
the step count, never on the ensemble size, batching or the order of calls, and a
restarted run reproduces them from the step number alone.  Nothing uses global state.
"""
import zlib

import numpy as np


def stream_key(seed, member, name):
    """The 128-bit Philox key of stream ``name`` of ``member`` (two uint64)."""
    tag = zlib.crc32(name.encode())
    return np.random.SeedSequence([int(seed), int(member), tag]).generate_state(2, np.uint64)


def generator(seed, member, name, step=0):
    """A numpy Generator positioned at the start of ``step``'s draws of that stream."""
    counter = np.array([0, 0, int(step), 0], dtype=np.uint64)
    return np.random.Generator(np.random.Philox(key=stream_key(seed, member, name), counter=counter))


def standard_normal(seed, members, name, step, shape, out=None):
    """Standard normal draws ``(len(members), *shape)``, one member stream per row."""
    if out is None:
        out = np.empty((len(members),) + tuple(shape))
    for row, member in enumerate(members):
        generator(seed, member, name, step).standard_normal(shape, out=out[row])
    return out
