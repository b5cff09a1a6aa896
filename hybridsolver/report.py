"""Scores of an ensemble run against a reference, and its report (``hybridsolver report``).

    hybridsolver report RUN_DIR [--reference DIR_OR_FILE] [--member N]

reads a run directory (``case.toml``, ``fields.nc``, ``diagnostics.nc``, ``summary.json``;
:mod:`hybridsolver.output`) and, when there is one, a reference: another run directory or
a truth file written by ``hybridsolver generate`` (:mod:`hybridsolver.datasets`), given by
``--reference`` or else by the run's ``[reference]`` case table (``dir`` or ``path``, and
``member``).  The reference must hold the run's field on the same grid; the scores are
computed at the times both files hold (equal to a relative 1e-9), whatever the cadence
each was written at.  :func:`report` writes ``RUN_DIR/scores.nc`` (:func:`scores`) and
``RUN_DIR/report/``: PNG figures and an ``index.html`` that links them.

Shapes and units: a field at one time is ``(M, [layer,] [y,] x)``, members first
(DESIGN.md section 3); spectra are ``(M, nk)`` on shell wavenumbers ``k``.  Times are the
run's model time units, field scores (RMSE, spread, CRPS, Wasserstein-1) are in the
field's units, the spectral RMSE in decades (of log10 spectra), ratios and
autocorrelations are dimensionless.  Where a file has an int8 ``valid (member, time)``
variable, members with ``valid == 0`` at a time are left out of that time's statistics;
diagnostics that are not finite are left out the same way.
"""
import html
import json
import math
import os
from dataclasses import dataclass

import netCDF4
import numpy as np
import xarray as xr

from . import uq
from .case import CaseError, load_case, resolve_path
from .output import write_atomic

TIME_RTOL = 1e-9  # times of the run and of the reference match to this relative tolerance
BAND = (0.05, 0.95)  # quantiles of the spectral bands
ROUND_OFF = 1e-10  # a spread below this fraction of the members' rms value counts as none (identical members)
SPECTRUM_FLOOR = 1e-10  # shells below this fraction of a spectrum's maximum (dealiased tails) are left out
MAX_SNAPSHOTS = 8  # members drawn in the snapshot figure
NOT_FIELDS = ("member", "time", "step", "valid")  # variables along (member, time) that are not fields


@dataclass
class Fields:
    """One field of a netCDF file with dims ``(member, time, [layer,] [y,] x)``, read one
    time at a time.

    ``time`` (T,) model time; ``members`` (M,) member ids; ``valid`` bool (M, T);
    ``axes`` {axis name: coordinate values} of the grid (``y`` and ``x``, or ``x``);
    ``shape`` one member's field shape, ``([layers,] [ny,] nx)``.
    """
    path: str
    name: str
    time: np.ndarray
    members: np.ndarray
    valid: np.ndarray
    axes: dict
    shape: tuple

    def at(self, i):
        """Every member's field at time index ``i``: (M, *shape) float64, rows of invalid
        members included (select with ``valid[:, i]``)."""
        with netCDF4.Dataset(self.path) as ds:
            ds.set_auto_mask(False)
            return np.asarray(ds[self.name][:len(self.members), i], dtype=np.float64)

    def valid_at(self, i):
        """The fields of the members valid at time index ``i``: (M_valid, *shape)."""
        return self.at(i)[self.valid[:, i]]


@dataclass
class Diagnostics:
    """A run's ``diagnostics.nc``: ``time`` (T,), ``members`` (M,) member ids, ``valid``
    bool (M, T) (the file's flag and finite values), ``scalars`` {name: (M, T)},
    ``spectra`` {name: (M, T, nk)} on the shell wavenumbers ``k`` (nk,)."""
    path: str
    time: np.ndarray
    members: np.ndarray
    valid: np.ndarray
    scalars: dict
    spectra: dict
    k: np.ndarray


@dataclass
class Reference:
    """The truth: ``fields`` (the run's field on its grid), ``diagnostics`` (a reference run
    directory's, else None) and ``member``, the row of the truth member (0 = the first)."""
    fields: Fields
    diagnostics: Diagnostics
    member: int


def _open(path):
    try:
        return netCDF4.Dataset(path)
    except OSError as exc:
        raise CaseError(f"{path}: not a readable netCDF file ({exc})") from None


def _valid(ds, members, times):
    """Bool (members, times): the file's ``valid`` flag where it has one, else all True."""
    if "valid" not in ds.variables:
        return np.ones((members, times), dtype=bool)
    return np.asarray(ds["valid"][:members, :times]) != 0


def open_fields(path, name=None):
    """:class:`Fields` of variable ``name`` in netCDF file ``path`` (default: its first
    field, a variable along ``(member, time, ...)`` other than ``*_noise``); errors name
    the file.  In a ``generate`` file only the members it records as complete are read."""
    if not os.path.isfile(path):
        raise CaseError(f"{path}: file does not exist")
    with _open(path) as ds:
        ds.set_auto_mask(False)
        names = [v for v, var in ds.variables.items()
                 if var.dimensions[:2] == ("member", "time") and v not in NOT_FIELDS and not v.endswith("_noise")]
        if name is None and not names:
            raise CaseError(f"{path}: no field variable with dims (member, time, ...)")
        name = name or names[0]
        if name not in names:
            raise CaseError(f"{path}: no field '{name}' (it holds: {', '.join(names) or 'none'})")
        var = ds[name]
        rows = int(getattr(ds, "complete", len(ds.dimensions["member"])))
        time = np.asarray(ds["time"][:], dtype=np.float64)
        axes = {d: np.asarray(ds[d][:], dtype=np.float64) for d in var.dimensions[2:] if d != "layer"}
        return Fields(path, name, time, np.asarray(ds["member"][:rows]), _valid(ds, rows, len(time)), axes,
                      tuple(var.shape[2:]))


def open_diagnostics(path):
    """:class:`Diagnostics` of ``path``, or None where there are none (no file, no times)."""
    if not os.path.isfile(path):
        return None
    with _open(path) as ds:
        ds.set_auto_mask(False)
        T, M = len(ds.dimensions["time"]), len(ds.dimensions["member"])
        if T == 0:
            return None
        data = {v: np.asarray(var[...], dtype=np.float64) for v, var in ds.variables.items()
                if var.dimensions[:2] == ("member", "time") and v not in NOT_FIELDS}
        valid = _valid(ds, M, T)
        time = np.asarray(ds["time"][:], dtype=np.float64)
        members = np.asarray(ds["member"][:])
        k = np.asarray(ds["k"][:], dtype=np.float64) if "k" in ds.variables else np.zeros(0)
    for values in data.values():
        valid &= np.isfinite(values).reshape(M, T, -1).all(axis=-1)
    return Diagnostics(path, time, members, valid, {n: v for n, v in data.items() if v.ndim == 2},
                       {n: v for n, v in data.items() if v.ndim == 3}, k)


def load_run(run_dir):
    """``(fields, diagnostics or None)`` of run directory ``run_dir``."""
    if not os.path.isdir(run_dir):
        raise CaseError(f"{run_dir}: run directory does not exist")
    path = os.path.join(run_dir, "fields.nc")
    if not os.path.isfile(path):
        raise CaseError(f"{path}: does not exist (not a run directory written by hybridsolver run)")
    return open_fields(path), open_diagnostics(os.path.join(run_dir, "diagnostics.nc"))


def read_summary(run_dir):
    """``summary.json`` of a run directory as a dict ({} where it is missing)."""
    path = os.path.join(run_dir, "summary.json")
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


def reference_source(run_dir, reference=None, member=None):
    """``(path, member)`` of the run's reference, ``(None, None)`` without one.

    ``reference`` (a run directory or a truth file) and ``member`` (a row of its members)
    override the run's ``case.toml`` ``[reference]`` table, whose relative ``dir`` or
    ``path`` is read from the working directory, else from the folder of the case file
    the run was made from (``summary.json``'s ``case``).
    """
    if reference is not None:
        return reference, member or 0
    case_path = os.path.join(run_dir, "case.toml")
    section = load_case(case_path).data.get("reference") if os.path.isfile(case_path) else None
    if section is None:
        return None, None
    case_file = read_summary(run_dir).get("case")
    folder = os.path.dirname(os.path.abspath(case_file)) if case_file else None
    return resolve_path(section.get("dir") or section["path"], folder), section["member"] if member is None else member


def check_grid(reference, run):
    """CaseError naming the reference's file unless its field has the run's shape and
    grid coordinates (both :class:`Fields`)."""
    if reference.shape != run.shape:
        raise CaseError(f"{reference.path}: the reference's {reference.name} has shape {reference.shape} per "
                        f"member, the run's {run.shape} (another grid)")
    for axis, values in run.axes.items():
        other = reference.axes.get(axis)
        if other is None or not np.allclose(other, values, rtol=TIME_RTOL, atol=0):
            span = f"[{other[0]:.6g}, {other[-1]:.6g}]" if other is not None else "absent"
            raise CaseError(f"{reference.path}: the reference's {axis} coordinates {span} differ from the run's "
                            f"[{values[0]:.6g}, {values[-1]:.6g}] (another grid)")


def load_reference(source, run, member=0):
    """The :class:`Reference` at ``source`` (a run directory or a truth netCDF file) for
    the run's :class:`Fields` ``run``: same field, same grid, ``member`` a row it holds."""
    if os.path.isdir(source):
        path, diagnostics = os.path.join(source, "fields.nc"), open_diagnostics(os.path.join(source, "diagnostics.nc"))
    else:
        path, diagnostics = source, None
    if not os.path.exists(path):
        raise CaseError(f"{path}: reference does not exist")
    fields = open_fields(path, run.name)
    check_grid(fields, run)
    if not 0 <= member < len(fields.members):
        raise CaseError(f"{path}: no reference member row {member} (it holds {len(fields.members)} member(s), "
                        f"rows 0 to {len(fields.members) - 1})")
    return Reference(fields, diagnostics, member)


def common_times(a, b):
    """Indices ``(ia, ib)`` of the times of ``a`` (T_a,) that ``b`` (T_b,) also holds (to a
    relative ``TIME_RTOL``), in the order of ``a``."""
    ia, ib = [], []
    for i, t in enumerate(a):
        match = np.flatnonzero(np.abs(b - t) <= TIME_RTOL * np.maximum(np.abs(b), abs(t)))
        if match.size:
            ia.append(i)
            ib.append(int(match[0]))
    return np.array(ia, dtype=int), np.array(ib, dtype=int)


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
    identical up to round-off, :func:`no_spread`), fair ``crps`` and ``wasserstein1``
    between the values of the members and those of ``reference_members`` (R, ...)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.nan if no_spread(ensemble) else float(uq.spread_skill(ensemble, truth))
    return {"rmse": float(np.sqrt(np.mean((uq.ensemble_mean(ensemble) - truth) ** 2))),
            "spread": spread(ensemble), "spread_skill": ratio, "crps": float(np.mean(uq.crps(ensemble, truth))),
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
    names = ("rmse", "spread", "spread_skill", "crps", "wasserstein1")
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


def scores(fields, diagnostics=None, reference=None):
    """The run's scores as an :class:`xarray.Dataset` (what ``scores.nc`` holds).

    ``fields`` and ``diagnostics`` are the run's (:func:`load_run`), ``reference`` a
    :class:`Reference` or None.  Along ``time`` (the times of the run's fields that the
    reference also holds; all of them without a reference): ``members`` (members valid)
    and ``spread``, and with a reference ``rmse`` (ensemble mean vs the truth member),
    ``spread_skill``, ``crps`` (fair, mean over points) and ``wasserstein1`` (field values
    of the members vs those of all reference members); ``rank_histogram (rank)`` (the
    truth's rank among the members, over the common times after the first at which every
    member is valid and the spread is not zero, :func:`no_spread`); ``spectral_rmse (spectrum_time)`` where
    both have ``energy_spectrum``; ``energy_autocorrelation (member, lag)`` and
    ``reference_energy_autocorrelation (reference_member, reference_lag)`` where there are
    energy series.
    """
    units = f"units of {fields.name}"
    out = xr.Dataset(attrs={"field": fields.name, "fields": fields.path,
                            "reference": reference.fields.path if reference else "none"})
    if reference is None:
        ia = np.arange(len(fields.time))
        series = {"spread": np.array([spread(fields.valid_at(i)) if fields.valid[:, i].sum() > 1 else np.nan
                                      for i in ia])}
    else:
        ia, series, counts, ranked = _truth_scores(fields, reference)
        out.coords["rank"] = ("rank", np.arange(len(counts)))
        out["rank_histogram"] = ("rank", counts, {
            "long_name": "counts of the truth's rank among the members (number of members below it)",
            "times": ranked, "points_per_time": math.prod(fields.shape)})
        out.attrs["reference_member"] = int(reference.fields.members[reference.member])
    out.coords["time"] = ("time", fields.time[ia], {"units": "model time units"})
    out["members"] = ("time", fields.valid[:, ia].sum(axis=0), {"long_name": "members valid"})
    long_names = {"rmse": "RMSE of the ensemble mean against the truth", "spread": "root mean ensemble variance",
                  "spread_skill": "spread-skill ratio sqrt((M+1)/M) spread / rmse",
                  "crps": "fair CRPS, mean over points", "wasserstein1": "Wasserstein-1 distance of field values"}
    for name, values in series.items():
        out[name] = ("time", values, {"long_name": long_names[name],
                                      "units": "1" if name == "spread_skill" else units})
    spectral = spectral_scores(diagnostics, reference.diagnostics if reference else None)
    if spectral is not None:
        out.coords["spectrum_time"] = ("spectrum_time", spectral[0], {"units": "model time units"})
        out["spectral_rmse"] = ("spectrum_time", spectral[1], {
            "long_name": "RMSE of log10 energy spectra, ensemble mean vs reference mean", "units": "decades"})
    for prefix, diag in (("", diagnostics), ("reference_", reference.diagnostics if reference else None)):
        acf = energy_autocorrelation(diag)
        if acf is not None:
            member_dim, lag_dim = f"{prefix}member", f"{prefix}lag"
            out.coords[lag_dim] = (lag_dim, acf[0], {"units": "model time units"})
            out.coords[member_dim] = (member_dim, diag.members)
            out[f"{prefix}energy_autocorrelation"] = ((member_dim, lag_dim), acf[1], {"units": "1"})
    return out


def write_scores(dataset, path):
    """Write ``dataset`` to netCDF ``path`` through a temporary file; returns ``path``."""
    tmp = f"{path}.tmp"
    dataset.to_netcdf(tmp, engine="netcdf4")
    os.replace(tmp, path)
    return path


# ---- figures ----------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def _save(plt, fig, path):
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _first_layer(fields, values):
    """Values (..., [layer,] [y,] x) -> (..., [y,] x): the first layer of layered fields."""
    return values[..., 0, :, :] if len(fields.shape) > len(fields.axes) else values


def _truth_at(reference, t):
    """The truth member's field (first layer) at time ``t``, or None where the reference
    has no valid one then."""
    if reference is None:
        return None
    ref = reference.fields
    _, ib = common_times(np.array([t]), ref.time)
    if ib.size == 0 or not ref.valid[reference.member, ib[0]]:
        return None
    return _first_layer(ref, ref.at(ib[0])[reference.member])


def _colour_scale(arrays):
    """imshow colour settings shared by ``arrays``: a diverging map symmetric about 0 for
    signed values, a sequential one from 0 otherwise."""
    low = min(float(np.min(a)) for a in arrays)
    high = max(float(np.max(np.abs(a))) for a in arrays) or 1.0
    if low < 0:
        return {"cmap": "RdBu_r", "vmin": -high, "vmax": high}
    return {"cmap": "viridis", "vmin": 0.0, "vmax": high}


def _image(ax, values, axes, title, scale):
    """Draw a (ny, nx) field on its grid coordinates; returns the image."""
    y, x = axes["y"], axes["x"]
    dx, dy = (x[1] - x[0], y[1] - y[0])
    image = ax.imshow(values, origin="lower", extent=(x[0] - dx / 2, x[-1] + dx / 2, y[0] - dy / 2, y[-1] + dy / 2),
                      interpolation="nearest", **scale)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.ticklabel_format(style="sci", scilimits=(-3, 4), useMathText=True)  # e.g. metres of qg2layer
    return image


def _panels(plt, count):
    """A figure with ``count`` panels in a near-square grid; (fig, flat list of axes in use)."""
    cols = math.ceil(math.sqrt(count))
    rows = math.ceil(count / cols)
    fig, axs = plt.subplots(rows, cols, figsize=(3.4 * cols + 1.2, 3.2 * rows), squeeze=False,
                            layout="constrained")
    for ax in axs.flat[count:]:
        ax.set_visible(False)
    return fig, list(axs.flat[:count])


def _field_label(fields):
    layered = len(fields.shape) > len(fields.axes)
    return fields.name + (" (layer 1)" if layered else "")


def snapshot_figure(plt, path, fields, reference):
    """Up to ``MAX_SNAPSHOTS`` members' fields at the run's last fields time, and the
    truth member's then (images on 2D grids, lines on 1D grids)."""
    i = len(fields.time) - 1
    t = fields.time[i]
    rows = np.flatnonzero(fields.valid[:, i])[:MAX_SNAPSHOTS]
    values = _first_layer(fields, fields.at(i))
    panels = [(f"member {fields.members[r]}", values[r]) for r in rows]
    truth = _truth_at(reference, t)
    if truth is not None:
        panels.append((f"reference (member {reference.fields.members[reference.member]})", truth))
    label = _field_label(fields)
    if len(fields.axes) == 1:
        fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
        x = fields.axes["x"]
        for title, v in panels:
            style = {"color": "k", "lw": 2} if title.startswith("reference") else {"lw": 1}
            ax.plot(x, v, label=title, **style)
        ax.set(xlabel="x", ylabel=label, title=f"{label} at t = {t:.4g}")
        ax.legend(fontsize=8, ncol=2)
        return _save(plt, fig, path)
    fig, axs = _panels(plt, len(panels))
    scale = _colour_scale([v for _, v in panels])
    for ax, (title, v) in zip(axs, panels):
        image = _image(ax, v, fields.axes, title, scale)
    fig.colorbar(image, ax=axs, shrink=0.8, label=label)
    fig.suptitle(f"{label} at t = {t:.4g}: members" + (" and the reference" if truth is not None else ""))
    return _save(plt, fig, path)


def mean_std_figure(plt, path, fields, reference):
    """Ensemble mean and standard deviation at the run's last fields time, with the truth
    and the error of the mean where the reference has that time."""
    i = len(fields.time) - 1
    t = fields.time[i]
    ensemble = _first_layer(fields, fields.valid_at(i))
    mean, std = uq.ensemble_mean(ensemble), uq.ensemble_std(ensemble)
    truth = _truth_at(reference, t)
    label = _field_label(fields)
    title = f"{label} at t = {t:.4g}, {len(ensemble)} members"
    if len(fields.axes) == 1:
        fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
        x = fields.axes["x"]
        low, high = uq.quantiles(ensemble, BAND)
        ax.fill_between(x, low, high, color="C0", alpha=0.2, label="5-95% of members")
        ax.fill_between(x, mean - std, mean + std, color="C0", alpha=0.35, label="mean ± std")
        ax.plot(x, mean, color="C0", label="ensemble mean")
        if truth is not None:
            ax.plot(x, truth, color="k", lw=1.5, label="reference")
        ax.set(xlabel="x", ylabel=label, title=title)
        ax.legend(fontsize=8)
        return _save(plt, fig, path)
    panels = [("ensemble mean", mean, label), ("ensemble std", std, f"std of {label}")]
    if truth is not None:
        panels[1:1] = [("reference", truth, label)]
        panels.append(("mean − reference", mean - truth, f"error of the mean ({label})"))
    fig, axs = _panels(plt, len(panels))
    signed = _colour_scale([mean] + ([truth] if truth is not None else []))
    for ax, (name, v, units) in zip(axs, panels):
        scale = signed if name in ("ensemble mean", "reference") else _colour_scale([v])
        image = _image(ax, v, fields.axes, name, scale)
        fig.colorbar(image, ax=ax, shrink=0.85, label=units)
    fig.suptitle(title)
    return _save(plt, fig, path)


def _positive(values):
    """Values with the ones that are not positive as NaN (for log axes)."""
    values = np.asarray(values, dtype=np.float64)
    return np.where(values > 0, values, np.nan)


def spectra_figure(plt, path, diagnostics, reference):
    """Every spectrum of the run's diagnostics at its last time: ensemble mean and 5-95%
    band over members, the reference's mean (and band) overlaid at the same time; log-log,
    over the shells above ``SPECTRUM_FLOOR`` times the mean's maximum."""
    i = len(diagnostics.time) - 1
    t = diagnostics.time[i]
    ref = reference.diagnostics if reference else None
    j = common_times(np.array([t]), ref.time)[1] if ref else np.zeros(0, dtype=int)
    names = sorted(diagnostics.spectra)
    fig, axs = plt.subplots(1, len(names), figsize=(5.2 * len(names), 4.2), squeeze=False, layout="constrained")
    k = diagnostics.k
    for ax, name in zip(axs.flat, names):
        members = diagnostics.spectra[name][diagnostics.valid[:, i], i]
        mean, low, high = uq.spectral_band(members, BAND)
        shown = (k > 0) & (mean > SPECTRUM_FLOOR * mean.max())
        ax.fill_between(k[shown], _positive(low[shown]), _positive(high[shown]), color="C0", alpha=0.3,
                        label=f"5-95% of {len(members)} members")
        ax.plot(k[shown], _positive(mean[shown]), color="C0", label="ensemble mean")
        if j.size and name in ref.spectra and np.array_equal(ref.k, k):
            truth = ref.spectra[name][ref.valid[:, j[0]], j[0]]
            ref_mean, ref_low, ref_high = uq.spectral_band(truth, BAND)
            if len(truth) > 1:
                ax.fill_between(k[shown], _positive(ref_low[shown]), _positive(ref_high[shown]), color="k",
                                alpha=0.15, label=f"5-95% of {len(truth)} reference members")
            ax.plot(k[shown], _positive(ref_mean[shown]), color="k", ls="--",
                    label="reference" + (" mean" if len(truth) > 1 else ""))
        ax.set(xscale="log", yscale="log", xlabel="wavenumber |k|", ylabel=name, title=f"{name} at t = {t:.4g}")
        ax.legend(fontsize=8)
    return _save(plt, fig, path)


def growth_figure(plt, path, data):
    """Spread, and with a reference the RMSE of the ensemble mean and the CRPS, against
    time (log scale)."""
    fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
    t = data["time"].values
    for name, label, style in (("rmse", "RMSE of the ensemble mean", "-"), ("spread", "spread (root mean variance)",
                                                                            "--"), ("crps", "CRPS (fair)", ":")):
        if name in data:
            ax.plot(t, _positive(data[name].values), ls=style, marker=".", label=label)
    ax.set(yscale="log", xlabel="time (model units)", ylabel=f"{data.attrs['field']} (field units)",
           title="error and spread growth" if "rmse" in data else "spread growth")
    later = [_positive(data[n].values[1:]) for n in ("rmse", "spread", "crps") if n in data]
    if len(t) > 1 and np.isfinite(later).any():  # identical initial members put t = 0 at round-off
        ax.set_ylim(bottom=0.5 * np.nanmin(later))
    ax.legend()
    return _save(plt, fig, path)


def distance_figure(plt, path, data):
    """Wasserstein-1 distance of the field values against time and, where both have
    energy spectra, the log spectral RMSE against time."""
    spectral = "spectral_rmse" in data
    fig, axs = plt.subplots(1, 1 + spectral, figsize=(5.5 * (1 + spectral), 4), squeeze=False, layout="constrained")
    axs[0, 0].plot(data["time"], data["wasserstein1"], marker=".")
    axs[0, 0].set(xlabel="time (model units)", ylabel=f"W1 ({data.attrs['field']} units)",
                  title="Wasserstein-1: members' vs reference's values")
    if spectral:
        axs[0, 1].plot(data["spectrum_time"], data["spectral_rmse"], lw=0.8)
        axs[0, 1].set(xlabel="time (model units)", ylabel="RMSE of log10 spectra (decades)",
                      title="energy spectrum: ensemble mean vs reference")
    for ax in axs.flat:
        ax.set_ylim(bottom=0)
    return _save(plt, fig, path)


def spread_skill_figure(plt, path, data):
    """Spread-skill ratio against time, with the calibrated value 1."""
    fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
    ax.axhline(1.0, color="k", lw=1, ls="--", label="calibrated (1)")
    ax.plot(data["time"], data["spread_skill"], marker=".", label="sqrt((M+1)/M) spread / RMSE")
    finite = data["spread_skill"].values[np.isfinite(data["spread_skill"].values)]
    ax.set_ylim(0, max(2.0, 1.1 * finite.max()) if finite.size else 2.0)
    ax.set(xlabel="time (model units)", ylabel="spread-skill ratio",
           title="spread-skill (< 1: under-dispersive, > 1: over-dispersive)")
    ax.legend()
    return _save(plt, fig, path)


def rank_histogram_figure(plt, path, data):
    """Relative frequency of the truth's rank among the members, with the uniform level."""
    counts = data["rank_histogram"].values
    attrs = data["rank_histogram"].attrs
    fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
    ax.bar(np.arange(len(counts)), counts / counts.sum(), color="C0", edgecolor="k")
    ax.axhline(1 / len(counts), color="k", ls="--", label=f"uniform (1/{len(counts)})")
    ax.set(xlabel="rank of the truth (members below it)", ylabel="relative frequency",
           title=f"rank histogram: {attrs['times']} times × {attrs['points_per_time']} points")
    ax.set_xticks(np.arange(len(counts)))
    ax.legend()
    return _save(plt, fig, path)


def autocorrelation_figure(plt, path, data):
    """Temporal autocorrelation of each member's energy, their mean, and the reference's."""
    fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
    values = data["energy_autocorrelation"].values
    lag = data["lag"].values
    for row in values:
        ax.plot(lag, row, color="C0", lw=0.6, alpha=0.5)
    ax.plot(lag, np.nanmean(values, axis=0), color="C0", lw=2, label="members (thin) and their mean")
    if "reference_energy_autocorrelation" in data:
        ax.plot(data["reference_lag"], np.nanmean(data["reference_energy_autocorrelation"].values, axis=0),
                color="k", ls="--", lw=2, label="reference")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(xlabel="lag (model time units)", ylabel="autocorrelation", title="energy: temporal autocorrelation")
    ax.legend()
    return _save(plt, fig, path)


FIGURES = (  # (file, caption, needs a reference)
    ("snapshots.png", "Member snapshots at the last fields time (and the reference's truth member).", False),
    ("mean_std.png", "Ensemble mean and standard deviation at the last fields time (with the truth and the "
                     "error of the mean).", False),
    ("spectra.png", "Spectra at the last diagnostics time: ensemble mean and 5–95% band (reference dashed).", False),
    ("growth.png", "Error and spread growth: RMSE of the ensemble mean, spread and CRPS against time.", False),
    ("spread_skill.png", "Spread–skill ratio against time (1: calibrated).", True),
    ("rank_histogram.png", "Rank histogram of the truth among the members (flat: calibrated).", True),
    ("distances.png", "Wasserstein-1 distance of field values and log spectral RMSE against time.", True),
    ("autocorrelation.png", "Temporal autocorrelation of the energy series.", False),
)


def _make_figures(out_dir, fields, diagnostics, reference, data):
    """Draw the figures into ``out_dir``: ``(made [(file, caption)], left out [(file, why)])``."""
    plt = _pyplot()
    draw = {
        "snapshots.png": lambda p: snapshot_figure(plt, p, fields, reference),
        "mean_std.png": lambda p: mean_std_figure(plt, p, fields, reference),
        "spectra.png": lambda p: spectra_figure(plt, p, diagnostics, reference),
        "growth.png": lambda p: growth_figure(plt, p, data),
        "spread_skill.png": lambda p: spread_skill_figure(plt, p, data),
        "rank_histogram.png": lambda p: rank_histogram_figure(plt, p, data),
        "distances.png": lambda p: distance_figure(plt, p, data),
        "autocorrelation.png": lambda p: autocorrelation_figure(plt, p, data),
    }
    absent = {
        "spectra.png": None if diagnostics is not None and diagnostics.spectra else "the run's diagnostics.nc has "
                                                                                   "no spectra",
        "autocorrelation.png": None if "energy_autocorrelation" in data else "the run has no energy series of at "
                                                                              "least 4 diagnostics times",
        "rank_histogram.png": None if reference is None or data["rank_histogram"].attrs["times"] else
        "no common time after the first with a non-zero spread and every member valid",
    }
    made, left_out = [], []
    for name, caption, needs_truth in FIGURES:
        why = "it needs a reference (--reference or the case's [reference])" if needs_truth and reference is None \
            else absent.get(name)
        if why:
            left_out.append((name, why))
        else:
            draw[name](os.path.join(out_dir, name))
            made.append((name, caption))
    return made, left_out


# ---- index.html -------------------------------------------------------------------


def _member_status(summary):
    """'ok (8)' or 'ok (7); non-finite by step 120 (member 3)' from summary.json."""
    groups = {}
    for member, status in summary.get("member_status", {}).items():
        groups.setdefault(status, []).append(member)
    return "; ".join(f"{status} ({len(ids)})" if status == "ok" else f"{status} (member {', '.join(ids)})"
                     for status, ids in groups.items()) or "unknown"


def _number(value, digits=4):
    return "—" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}g}"


def _summary_rows(summary):
    return [("status", summary.get("status", "unknown")), ("member status", _member_status(summary)),
            ("steps", summary.get("final_step", "—")), ("final time", _number(summary.get("final_time"))),
            ("wall time (s)", _number(summary.get("wall_seconds"))), ("ms/step", _number(summary.get("ms_per_step")))]


def score_rows(data):
    """``[(score, value at the last common time, mean over the common times after the first)]``."""
    rows = []
    for name in ("spread_skill", "rmse", "spread", "crps", "wasserstein1", "spectral_rmse"):
        if name in data:
            values = data[name].values
            rows.append((name, values[-1], np.nanmean(values[1:]) if np.isfinite(values[1:]).any() else np.nan))
    return rows


def _table(rows, header=None):
    head = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def write_index(path, run_dir, made, left_out, data, summary):
    """Write ``index.html``: the run's summary and mean scores, every figure (linked and
    shown), the figures left out and why, and the case file."""
    case_path = os.path.join(run_dir, "case.toml")
    case_text = open(case_path).read() if os.path.isfile(case_path) else "(no case.toml)"
    reference = data.attrs["reference"]
    t = data["time"].values
    scores = [(n, data[n].attrs["units"], _number(last), _number(mean)) for n, last, mean in score_rows(data)]
    parts = [
        "<!DOCTYPE html>", "<html><head><meta charset='utf-8'>",
        f"<title>report: {html.escape(run_dir)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}td,th{padding:2px 10px;text-align:left}"
        "img{max-width:100%}pre{background:#f4f4f4;padding:8px}</style></head><body>",
        f"<h1>{html.escape(summary.get('equation', ''))} run {html.escape(os.path.abspath(run_dir))}</h1>",
        f"<p>field <code>{html.escape(data.attrs['field'])}</code>; reference: "
        + (f"<code>{html.escape(reference)}</code> (truth member {data.attrs['reference_member']}); "
           f"{len(t)} common times, t = {t[0]:.4g} to {t[-1]:.4g}" if reference != "none" else "none")
        + ". Scores are in <a href='../scores.nc'>scores.nc</a>.</p>",
        "<h2>Summary</h2>", _table(_summary_rows(summary)),
        "<h2>Scores</h2>",
        _table(scores, ("score", "units", f"at t = {t[-1]:.4g}", "mean over the times after the first"))
        if len(t) else "<p>none</p>",
        "<h2>Figures</h2>",
    ]
    for name, caption in made:
        parts.append(f"<figure><a href='{name}'><img src='{name}' alt='{name}'></a>"
                     f"<figcaption>{html.escape(caption)} (<a href='{name}'>{name}</a>)</figcaption></figure>")
    if left_out:
        parts.append("<h3>Not made</h3><ul>" + "".join(f"<li>{name}: {html.escape(why)}</li>"
                                                       for name, why in left_out) + "</ul>")
    parts += ["<h2>Case</h2>", f"<pre>{html.escape(case_text)}</pre>", "</body></html>"]
    write_atomic(path, "\n".join(parts) + "\n")
    return path


def report(run_dir, reference=None, member=None):
    """Write ``RUN_DIR/scores.nc`` and ``RUN_DIR/report/`` (the PNG figures of
    :data:`FIGURES` and ``index.html``) for run directory ``run_dir``; returns the paths
    written, ``index.html`` last.

    ``reference`` (a run directory or a truth netCDF file) and ``member`` (the row of its
    truth member) default to the run's ``[reference]`` case table; without a reference
    the figures that need a truth are left out and ``index.html`` says so.
    """
    fields, diagnostics = load_run(run_dir)
    source, member = reference_source(run_dir, reference, member)
    truth = load_reference(source, fields, member) if source is not None else None
    data = scores(fields, diagnostics, truth)
    paths = [write_scores(data, os.path.join(run_dir, "scores.nc"))]
    out_dir = os.path.join(run_dir, "report")
    os.makedirs(out_dir, exist_ok=True)
    made, left_out = _make_figures(out_dir, fields, diagnostics, truth, data)
    paths += [os.path.join(out_dir, name) for name, _ in made]
    paths.append(write_index(os.path.join(out_dir, "index.html"), run_dir, made, left_out, data,
                             read_summary(run_dir)))
    return paths
