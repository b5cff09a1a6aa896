"""Per-member temporal and stability scores of rollouts (long emulator runs at a glance).

Every function takes the members first (DESIGN.md section 3) and returns one row per
member, so the same call scores a run and its reference side by side.

- :func:`reference_band`: ``mean ± n std`` of a diagnostic over all of a reference's
  members and records (its finite values; the population std), the band
  ``monitor.reference_sigmas`` checks runs against;
- :func:`exit_steps`: the first step at which each member's diagnostic leaves the band
  (or stops being finite), :data:`NEVER` for members that stay inside;
- :func:`survival`: the fraction of members still inside the band at each record;
- :func:`spatiotemporal_correlation`: C(τ), the mean over t of the cosine between a
  member's anomalies at t and t + τ (anomaly from that member's time mean);
- :func:`rate_of_change`: R(t), the mean over grid points of ``|x_{t+1} - x_t| / Δt``.

numpy only; float64 throughout.
"""
import numpy as np

NEVER = -1  # exit step of a member that stays inside the band at every record
STEADY_RTOL = 1e-10  # an anomaly below this fraction of the field's norm is round-off: a steady member


def reference_band(values, sigmas=5.0):
    """``(low, high) = mean ∓ sigmas * std`` of ``values`` (any shape, e.g. a reference's
    diagnostic (R, T)) over its finite entries; ``std`` is the population one (ddof = 0),
    as ``Simulation`` computes ``monitor.reference_sigmas`` bounds.  Units of ``values``.
    ValueError with fewer than 2 finite values."""
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size < 2:
        raise ValueError(f"a band needs at least 2 finite values, got {values.size}")
    mean, std = values.mean(), values.std()
    return float(mean - sigmas * std), float(mean + sigmas * std)


def exit_steps(values, steps, low, high):
    """First step at which each member leaves ``[low, high]``: (M,) int64.

    ``values`` (M, T): a diagnostic per member at the records with step numbers ``steps``
    (T,) (increasing); a value outside the closed band or not finite (NaN, inf; a
    quarantined member's records are NaN) is out.  A member out at its first record exits
    at ``steps[0]``; a member inside at every record gets :data:`NEVER` (-1).  Exits are
    only seen at the records, so the true exit lies in (previous record's step, exit].
    """
    values = np.asarray(values, dtype=np.float64)
    steps = np.asarray(steps, dtype=np.int64)
    if values.ndim != 2 or values.shape[1] != steps.shape[0]:
        raise ValueError(f"values {values.shape} must be (members, {steps.shape[0]} records)")
    with np.errstate(invalid="ignore"):
        out = ~((values >= low) & (values <= high))  # NaN compares False: out
    first = np.argmax(out, axis=1)
    return np.where(out.any(axis=1), steps[first], NEVER).astype(np.int64)


def survival(exits, steps):
    """Fraction of members inside the band at each record, (T,) in [0, 1].

    ``exits`` (M,) from :func:`exit_steps`; ``steps`` (T,) the records' step numbers.
    A member that exits at step s counts as out from s on: inside at step t when it never
    exits or ``t < s``.  NaN for no members."""
    exits = np.asarray(exits, dtype=np.int64)
    steps = np.asarray(steps, dtype=np.int64)
    if exits.size == 0:
        return np.full(steps.shape, np.nan)
    inside = (exits[:, None] == NEVER) | (steps[None, :] < exits[:, None])
    return inside.mean(axis=0)


def _anomalies(x):
    """Anomalies (M, T, N) float64 of x (M, T, ...) from each member's time mean, and
    their norms (M, T), NaN where at most ``STEADY_RTOL`` of the field's norm."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 3:
        raise ValueError(f"fields must be (members, times, points...), got shape {x.shape}")
    x = x.reshape(x.shape[0], x.shape[1], -1)
    a = x - x.mean(axis=1, keepdims=True)
    norm = np.sqrt(np.einsum("mtn,mtn->mt", a, a))
    with np.errstate(invalid="ignore"):
        steady = norm <= STEADY_RTOL * np.sqrt(np.einsum("mtn,mtn->mt", x, x))
    return a, np.where(steady, np.nan, norm)


def spatiotemporal_correlation(x, lags):
    """C(τ) per member: (M, len(lags)), dimensionless in [-1, 1].

    ``x`` (M, T, ...): fields at T equally spaced times (every non-member, non-time axis
    is space: ``[layer,] [y,] x``); ``lags`` integer lags in records.  With
    ``a_t = x_t - x̄``, ``x̄`` the member's own mean over the T times held,

        C(τ) = mean over t = 0 .. T-1-τ of <a_t, a_{t+τ}> / (|a_t| |a_{t+τ}|),

    the inner product and norms over all points.  C(0) = 1; NaN for lags of T or more
    and where an anomaly is zero (a steady member: at most ``STEADY_RTOL`` of the field's
    norm, round-off of the time mean) or not finite.
    """
    a, norm = _anomalies(x)
    T = a.shape[1]
    out = np.full((a.shape[0], len(lags)), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        for i, lag in enumerate(lags):
            lag = int(lag)
            if lag < 0:
                raise ValueError(f"lags must not be negative, got {lag}")
            if lag >= T:
                continue
            inner = np.einsum("mtn,mtn->mt", a[:, :T - lag], a[:, lag:])
            out[:, i] = np.mean(inner / (norm[:, :T - lag] * norm[:, lag:]), axis=1)
    return out


def rate_of_change(x, dt):
    """R(t) = mean over points of |x_{t+1} - x_t| / Δt per member: (M, T-1), in the
    field's units per time unit.

    ``x`` (M, T, ...): fields at T records; ``dt`` the time between records, a scalar or
    (T-1,).  The L1 norm is the *mean* of |.| over grid points (not the sum), so R does
    not depend on the resolution.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2:
        raise ValueError(f"fields must be (members, times, ...), got shape {x.shape}")
    x = x.reshape(x.shape[0], x.shape[1], -1)
    dt = np.asarray(dt, dtype=np.float64)
    return np.mean(np.abs(np.diff(x, axis=1)), axis=2) / dt
