"""Scores of an ensemble run against a reference: what ``scores.nc`` holds (:func:`scores`).

Field scores (RMSE, spread, CRPS, Wasserstein-1) are in the field's units, the spectral
RMSE in decades (of log10 spectra), ratios and autocorrelations are dimensionless; the
rollout scores of :mod:`hybridsolver.stability` (exit steps from the reference's band of
a diagnostic, survival, spatio-temporal correlation, rate of change) are computed for
the run's members and the reference's the same way (:func:`band_scores`,
:func:`temporal_scores`).
"""
import math
import os

import numpy as np
import xarray as xr

from .. import cf, stability, uq
from ..case import CaseError
from ..output import read_diagnostic
from .load import common_times

ROUND_OFF = 1e-10  # a spread below this fraction of the members' rms value counts as none (identical members)
SPECTRUM_FLOOR = 1e-10  # shells below this fraction of a spectrum's maximum (dealiased tails) are left out
SPACING_RTOL = 1e-6  # record intervals equal to this relative tolerance are equally spaced (for C(tau))


def spread(ensemble):
    """Root of the mean (over all points) unbiased ensemble variance: (M, ...) -> float."""
    return float(np.sqrt(np.mean(uq.ensemble_std(ensemble) ** 2)))


def no_spread(ensemble):
    """Whether the members of ``ensemble`` (M, ...) are identical up to round-off: a
    spread of at most ``ROUND_OFF`` times their rms value."""
    return spread(ensemble) <= ROUND_OFF * np.sqrt(np.mean(ensemble**2))


def field_scores(ensemble, truth, reference_members):
    """Scores of ``ensemble`` (M, ...) against ``truth`` (...) at one time, means over all
    points: ``rmse`` of the ensemble mean, ``spread``, ``spread_skill`` (NaN for members
    identical up to round-off, :func:`no_spread`), fair ``crps``, ``coverage95`` (the
    fraction of points whose truth lies in the members' central 95% interval) and
    ``wasserstein1`` between the values of the members and those of ``reference_members`` (R, ...)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.nan if no_spread(ensemble) else float(uq.spread_skill(ensemble, truth))
    return {"rmse": float(np.sqrt(np.mean((uq.ensemble_mean(ensemble) - truth) ** 2))),
            "spread": spread(ensemble), "spread_skill": ratio, "crps": float(np.mean(uq.crps(ensemble, truth))),
            "coverage95": float(np.mean(uq.coverage(ensemble, truth))),
            "wasserstein1": uq.wasserstein1(ensemble, reference_members)}


def energy_autocorrelation(diagnostics):
    """``(lag (L,) in time units, autocorrelation (M, L))`` of each member's ``energy``
    series to half its length (NaN rows for members not valid throughout), or None
    without an energy series of at least 4 times."""
    if diagnostics is None or "energy" not in diagnostics.scalars or len(diagnostics.time) < 4:
        return None
    max_lag = len(diagnostics.time) // 2
    values = uq.autocorrelation(diagnostics.scalars["energy"], max_lag)
    values[~diagnostics.valid.all(axis=1)] = np.nan
    return (diagnostics.time[:max_lag + 1] - diagnostics.time[0]), values


def spectral_scores(run, reference, name="energy_spectrum"):
    """``(times, log spectral RMSE)`` of the ensemble-mean spectrum ``name`` against the
    reference members' mean at the diagnostics times both hold, over the shells k > 0 where
    both means exceed ``SPECTRUM_FLOOR`` times their maximum; None unless both
    :class:`Diagnostics` have it on the same k."""
    if run is None or reference is None or name not in run.spectra or name not in reference.spectra:
        return None
    if not np.array_equal(run.k, reference.k):
        return None
    ia, ib = common_times(run.time, reference.time)
    out = []
    for i, j in zip(ia, ib):
        if not (run.valid[:, i].any() and reference.valid[:, j].any()):
            out.append(np.nan)
            continue
        mean = uq.ensemble_mean(run.spectra[name][run.valid[:, i], i])
        truth = uq.ensemble_mean(reference.spectra[name][reference.valid[:, j], j])
        keep = (run.k > 0) & (mean > SPECTRUM_FLOOR * mean.max()) & (truth > SPECTRUM_FLOOR * truth.max())
        out.append(float(uq.spectral_rmse(mean[keep], truth[keep], log=True)))
    return run.time[ia], np.array(out)


def _truth_scores(fields, reference):
    """Per-time field scores at the common times and the rank histogram: (ia, {score:
    (T,)}, counts (M + 1,), times used)."""
    ref = reference.fields
    ia, ib = common_times(fields.time, ref.time)
    if ia.size == 0:
        raise CaseError(f"{ref.path}: no time in common with the run's fields (the reference holds t = "
                        f"{ref.time[0]:.6g} to {ref.time[-1]:.6g}, the run t = {fields.time[0]:.6g} to "
                        f"{fields.time[-1]:.6g})")
    names = ("rmse", "spread", "spread_skill", "crps", "coverage95", "wasserstein1")
    series = {n: np.full(ia.size, np.nan) for n in names}
    counts = np.zeros(len(fields.members) + 1, dtype=np.int64)
    ranked = 0
    for n, (i, j) in enumerate(zip(ia, ib)):
        ensemble = fields.valid_at(i)
        if len(ensemble) < 2 or not ref.valid[reference.member, j]:
            continue
        members = ref.at(j)
        truth = members[reference.member]
        values = field_scores(ensemble, truth, members[ref.valid[:, j]])
        for name in names:
            series[name][n] = values[name]
        if fields.time[i] > fields.time[0] and len(ensemble) == len(fields.members) and not no_spread(ensemble):
            counts += uq.rank_histogram(ensemble, truth)
            ranked += 1
    return ia, series, counts, ranked


def _member_exits(diagnostics, name, low, high):
    """Exit steps (M,) of ``diagnostics``' members from [low, high]: records where a
    member is not valid (quarantined, or a diagnostic not finite) count as out."""
    values = np.where(diagnostics.valid, diagnostics.scalars[name], np.nan)
    return stability.exit_steps(values, diagnostics.steps, low, high)


def band_scores(diagnostics, reference, name="energy", sigmas=5.0):
    """Exit steps and survival of diagnostic ``name`` against the reference's band.

    The band is the mean ± ``sigmas`` std of ``name`` over every member and record of the
    reference run directory's ``diagnostics.nc`` (:func:`hybridsolver.output.read_diagnostic`
    and :func:`hybridsolver.stability.reference_band`: the bounds ``monitor.reference_sigmas``
    gives a run).  Returns ``(result, None)`` with result {``low``, ``high``, ``exits``
    (M,), ``survival`` (T,) on the run's diagnostics records, ``reference_exits`` (R,),
    ``reference_survival`` (T_ref,)}, or ``(None, why)`` where the scores cannot be made.
    """
    if reference is None:
        return None, (f"it needs a reference run directory whose diagnostics.nc holds '{name}' for the band "
                      "(--reference or the case's [reference])")
    ref = reference.diagnostics
    if ref is None:
        return None, (f"the band needs a reference run directory with diagnostics; {reference.fields.path} has "
                      "none (a truth file of hybridsolver generate holds fields only)")
    for diag, whose in ((diagnostics, "the run's"), (ref, "the reference's")):
        if diag is None:
            return None, f"{whose} diagnostics.nc is missing or has no records"
        if name not in diag.scalars:
            return None, (f"{whose} diagnostics.nc ({diag.path}) has no '{name}' (it holds: "
                          f"{', '.join(sorted(diag.scalars)) or 'none'})")
        if diag.steps is None:
            return None, f"{whose} diagnostics.nc ({diag.path}) has no step variable"
    try:
        low, high = stability.reference_band(read_diagnostic(ref.path, name), sigmas)
    except (CaseError, ValueError) as exc:  # an unreadable file; fewer than 2 finite values
        return None, str(exc)
    exits = _member_exits(diagnostics, name, low, high)
    reference_exits = _member_exits(ref, name, low, high)
    return {"low": low, "high": high, "exits": exits, "survival": stability.survival(exits, diagnostics.steps),
            "reference_exits": reference_exits,
            "reference_survival": stability.survival(reference_exits, ref.steps)}, None


def _leading_valid(valid):
    """The number of records (of bool (T,)) before a member's first invalid one."""
    return int(np.argmin(valid)) if not valid.all() else len(valid)


def _equally_spaced(t):
    """The number of leading records of times ``t`` (T,) spaced by their first interval
    (to ``SPACING_RTOL``): all of them but a final record written off the cadence at the
    end of a run, for instance."""
    dt = np.diff(t)
    off = np.flatnonzero(np.abs(dt - dt[0]) > SPACING_RTOL * abs(dt[0]))
    return int(off[0]) + 1 if off.size else len(t)


def temporal_scores(fields):
    """C(τ) and R(t) of each member of :class:`Fields` ``fields``, or ``(None, why)``.

    Returns ``({"lag": (L,) model time, "correlation": (M, L), "records": the number of
    records C uses, "rate_time": (T-1,) the midpoints of the records, "rate_of_change":
    (M, T-1)}, None)``.  R(t) uses every record (Δt of each interval); C(τ) the leading
    equally spaced ones (:func:`_equally_spaced`: n of them), with lags of 0 to n // 2
    records.  The fields are read one member at a time (T records of one member in
    memory).  A member is scored over its records before its first invalid one (its time
    mean x̄ over those), and the lags or intervals it does not reach are NaN.  Needs at
    least 2 records.
    """
    t = fields.time
    if len(t) < 2:
        return None, f"{fields.path} holds {len(t)} record(s); C(τ) and R(t) need at least 2"
    dt = np.diff(t)
    if not (dt > 0).all():
        return None, f"the times of {fields.path} do not increase"
    spaced = _equally_spaced(t)
    lags = np.arange(spaced // 2 + 1)
    correlation = np.full((len(fields.members), len(lags)), np.nan)
    rate = np.full((len(fields.members), len(t) - 1), np.nan)
    for row in range(len(fields.members)):
        n = _leading_valid(fields.valid[row])
        if n == 0:
            continue
        x = fields.member(row)[None, :n]
        correlation[row] = stability.spatiotemporal_correlation(x[:, :spaced], lags)[0]
        if n > 1:
            rate[row, :n - 1] = stability.rate_of_change(x, dt[:n - 1])[0]
    return {"lag": lags * dt[0], "correlation": correlation, "records": spaced,
            "rate_time": 0.5 * (t[1:] + t[:-1]), "rate_of_change": rate}, None


def _exit_times(diagnostics, exits):
    """Model times (M,) of the records at the exit steps ``exits`` (M,); NaN for never."""
    rows = np.searchsorted(diagnostics.steps, np.where(exits == stability.NEVER, diagnostics.steps[0], exits))
    return np.where(exits == stability.NEVER, np.nan, diagnostics.time[rows])


def _units(units):
    """``{"units": units}``, or {} where the field's units are not known (None)."""
    return {} if units is None else {"units": units}


def _add_band_scores(out, diagnostics, reference, name, sigmas, system):
    result, why = band_scores(diagnostics, reference, name, sigmas)
    if result is None:
        out.attrs["exit_left_out"] = why
        return
    low, high = result["low"], result["high"]
    band = {"diagnostic": name, "sigmas": float(sigmas), "band_low": low, "band_high": high,
            "never": stability.NEVER}
    text = f"{name} outside [{low:.6g}, {high:.6g}] (reference mean ± {sigmas:g} std) or not finite"
    for prefix, diag in (("", diagnostics), ("reference_", reference.diagnostics)):
        exits = result[f"{prefix}exits"]
        member_dim, time_dim = f"{prefix}member", f"{prefix}survival_time"
        whose = "the reference's" if prefix else "the run's"
        out.coords[member_dim] = (member_dim, diag.members, cf.coordinate_attributes("member", system))
        out.coords[time_dim] = (time_dim, diag.time, cf.model_time_attributes(f"time of {whose} diagnostics records"))
        out.coords[f"{prefix}survival_step"] = (time_dim, diag.steps, {"long_name": "step of the record", "units": "1"})
        out[f"{prefix}exit_step"] = (member_dim, exits, dict(band, units="1", long_name=(
            f"first diagnostics step of {whose} member with {text}; {stability.NEVER}: never")))
        out[f"{prefix}exit_time"] = (member_dim, _exit_times(diag, exits), dict(
            band, **cf.model_time_attributes(f"time of {prefix}exit_step; NaN: never")))
        out[f"{prefix}survival"] = (time_dim, result[f"{prefix}survival"], dict(
            band, units="1", members=len(exits),
            long_name=f"fraction of {whose} members with {name} inside [{low:.6g}, {high:.6g}] at every record "
                      "so far"))


def _add_temporal_scores(out, fields, reference):
    system = fields.units_system
    units = None if fields.units is None else f"{fields.units} s-1" if system == "SI" else fields.units
    sources = [("", fields)] + ([("reference_", reference.fields)] if reference is not None else [])
    for prefix, source in sources:
        result, why = temporal_scores(source)
        if result is None:
            out.attrs[f"{prefix}temporal_left_out"] = why
            continue
        member_dim, lag_dim, rate_dim = f"{prefix}member", f"{prefix}correlation_lag", f"{prefix}rate_time"
        whose = "the reference's" if prefix else "the run's"
        out.coords[member_dim] = (member_dim, source.members, cf.coordinate_attributes("member", system))
        out.coords[lag_dim] = (lag_dim, result["lag"], {"long_name": "lag tau", "units": cf.duration_units(system)})
        out.coords[rate_dim] = (rate_dim, result["rate_time"],
                                cf.model_time_attributes("midpoint of two consecutive field records"))
        out[f"{prefix}correlation"] = ((member_dim, lag_dim), result["correlation"], {
            "units": "1", "records": result["records"],
            "long_name": f"spatio-temporal correlation C(tau) of {whose} {source.name}: mean over t of the cosine "
                         "between the anomalies (from the member's time mean) at t and t+tau, over the first "
                         f"{result['records']} (equally spaced) records"})
        out[f"{prefix}rate_of_change"] = ((member_dim, rate_dim), result["rate_of_change"], {
            **_units(units), "long_name": f"rate of change R(t) of {whose} {source.name}: mean over points of "
                                         "|x(t+dt) - x(t)| / dt between consecutive records"})


def scores(fields, diagnostics=None, reference=None, sigmas=5.0, diagnostic="energy"):
    """The run's scores as an :class:`xarray.Dataset` (what ``scores.nc`` holds).

    ``fields`` and ``diagnostics`` are the run's (:func:`load_run`), ``reference`` a
    :class:`Reference` or None.  Along ``time`` (the times of the run's fields that the
    reference also holds; all of them without a reference): ``members`` (members valid)
    and ``spread``, and with a reference ``rmse`` (ensemble mean vs the truth member),
    ``spread_skill``, ``crps`` (fair, mean over points), ``coverage95`` (fraction of points
    inside the members' central 95% interval) and ``wasserstein1`` (field values of the
    members vs those of all reference members); ``rank_histogram (rank)`` (the
    truth's rank among the members, over the common times after the first at which every
    member is valid and the spread is not zero, :func:`no_spread`); ``spectral_rmse (spectrum_time)`` where
    both have ``energy_spectrum``; ``energy_autocorrelation (member, lag)`` and
    ``reference_energy_autocorrelation (reference_member, reference_lag)`` where there are
    energy series.

    Rollout scores (:mod:`hybridsolver.stability`): where the reference is a run directory
    with diagnostics, ``exit_step (member)`` (first diagnostics step at which the member's
    ``diagnostic`` leaves the reference's mean ± ``sigmas`` std, -1: never; attrs
    ``diagnostic``, ``sigmas``, ``band_low``, ``band_high``), ``exit_time (member)``,
    ``survival (survival_time)`` (fraction of members inside so far; ``survival_step`` the
    records' steps) and the same for the reference's members (``reference_exit_step
    (reference_member)``, ``reference_survival (reference_survival_time)``), else the
    attribute ``exit_left_out`` says why; ``correlation (member, correlation_lag)`` (C(τ))
    and ``rate_of_change (member, rate_time)`` (R(t)) of the run's fields, and
    ``reference_correlation``, ``reference_rate_of_change`` of every reference member's
    (``temporal_left_out``, ``reference_temporal_left_out`` say why where they cannot be
    made).
    """
    system = fields.units_system
    out = xr.Dataset(attrs=cf.global_attributes(f"hybridsolver ensemble scores of {fields.name}", system) | {
        "field": fields.name, "fields": fields.path, "reference": reference.fields.path if reference else "none"})
    if reference is None:
        ia = np.arange(len(fields.time))
        series = {"spread": np.array([spread(fields.valid_at(i)) if fields.valid[:, i].sum() > 1 else np.nan
                                      for i in ia])}
    else:
        ia, series, counts, ranked = _truth_scores(fields, reference)
        out.coords["rank"] = ("rank", np.arange(len(counts)), {"long_name": "members below the truth", "units": "1"})
        out["rank_histogram"] = ("rank", counts, {
            "long_name": "counts of the truth's rank among the members (number of members below it)", "units": "1",
            "times": ranked, "points_per_time": math.prod(fields.shape)})
        out.attrs["reference_member"] = int(reference.fields.members[reference.member])
    out.coords["time"] = ("time", fields.time[ia], cf.time_attributes(system))
    out["members"] = ("time", fields.valid[:, ia].sum(axis=0), {"long_name": "members valid", "units": "1"})
    long_names = {"rmse": "RMSE of the ensemble mean against the truth", "spread": "root mean ensemble variance",
                  "spread_skill": "spread-skill ratio sqrt((M+1)/M) spread / rmse",
                  "crps": "fair CRPS, mean over points",
                  "coverage95": "fraction of points whose truth lies in the members' central 95% interval",
                  "wasserstein1": "Wasserstein-1 distance of field values"}
    for name, values in series.items():
        units = "1" if name in ("spread_skill", "coverage95") else fields.units
        out[name] = ("time", values, {"long_name": long_names[name], **_units(units)})
    spectral = spectral_scores(diagnostics, reference.diagnostics if reference else None)
    if spectral is not None:
        out.coords["spectrum_time"] = ("spectrum_time", spectral[0], cf.model_time_attributes("time of the spectra"))
        out["spectral_rmse"] = ("spectrum_time", spectral[1], {
            "long_name": "RMSE of log10 energy spectra (decades), ensemble mean vs reference mean", "units": "1"})
    for prefix, diag in (("", diagnostics), ("reference_", reference.diagnostics if reference else None)):
        acf = energy_autocorrelation(diag)
        if acf is not None:
            member_dim, lag_dim = f"{prefix}member", f"{prefix}lag"
            out.coords[lag_dim] = (lag_dim, acf[0], {"long_name": "lag", "units": cf.duration_units(system)})
            out.coords[member_dim] = (member_dim, diag.members, cf.coordinate_attributes("member", system))
            out[f"{prefix}energy_autocorrelation"] = ((member_dim, lag_dim), acf[1], {
                "long_name": "temporal autocorrelation of the energy", "units": "1"})
    _add_band_scores(out, diagnostics, reference, diagnostic, sigmas, system)
    _add_temporal_scores(out, fields, reference)
    return out


def write_scores(dataset, path):
    """Write ``dataset`` to netCDF ``path`` through a temporary file; returns ``path``.
    Coordinates get no ``_FillValue`` (CF forbids it on coordinate variables)."""
    tmp = f"{path}.tmp"
    dataset.to_netcdf(tmp, engine="netcdf4", encoding={name: {"_FillValue": None} for name in dataset.coords})
    os.replace(tmp, path)
    return path

