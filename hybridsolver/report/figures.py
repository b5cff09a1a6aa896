"""The figures of ``hybridsolver report``: one function per PNG of :data:`FIGURES`, each
drawn from the run's :class:`~hybridsolver.report.load.Fields`, its diagnostics, the
reference and the scores dataset (:func:`~hybridsolver.report.scoring.scores`)."""
import math
import os
import warnings

import numpy as np

from .. import uq
from .load import common_times
from .scoring import SPECTRUM_FLOOR

BAND = (0.05, 0.95)  # quantiles of the spectral bands
MAX_SNAPSHOTS = 8  # members drawn in the snapshot figure


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


def survival_figure(plt, path, data):
    """Fraction of the run's members whose diagnostic has stayed inside the reference's
    band against time (a step curve), each member's exit marked on it, and the
    reference's members' own curve dashed (with their exits)."""
    attrs = data["survival"].attrs
    fig, ax = plt.subplots(figsize=(7.5, 4.4), layout="constrained")
    curves = [("", "C0", "-", "run"), ("reference_", "k", "--", "reference")]
    for prefix, colour, style, who in curves:
        t, surv = data[f"{prefix}survival_time"].values, data[f"{prefix}survival"].values
        exits = data[f"{prefix}exit_time"].values
        never = int(np.sum(~np.isfinite(exits)))
        ax.step(t, surv, where="post", color=colour, ls=style, lw=2 if not prefix else 1.5,
                label=f"{who}: {len(exits)} member{'s' * (len(exits) != 1)}, {never} never leave")
        left = np.sort(exits[np.isfinite(exits)])
        if left.size:  # each exit on the curve, at the level from its record on
            level = surv[np.searchsorted(t, left)]
            ax.plot(left, level, ls="none", marker="v" if not prefix else "x", color=colour, ms=6,
                    label=f"{who}: exits ({left.size})")
    ax.set_ylim(-0.03, 1.05)
    ax.set(xlabel="time (model units)", ylabel="fraction of members inside the band",
           title=f"{attrs['diagnostic']} inside [{attrs['band_low']:.4g}, {attrs['band_high']:.4g}] "
                 f"(reference mean ± {attrs['sigmas']:g} std)")
    ax.legend(fontsize=8, loc="best")
    return _save(plt, fig, path)


def _mean_band(ax, x, values, colour, label):
    """The members' mean of ``values`` (M, n) against ``x`` with a ± std band (members with
    a value at x)."""
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (lags no member reaches)
        mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
    ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.25)
    ax.plot(x, mean, color=colour, lw=2, label=label)
    return mean


def temporal_figure(plt, path, data):
    """Left: C(τ) of the run's members (mean ± std over members) and the reference's
    (dashed); right: R(t), the same, log scale where it is positive."""
    fig, axs = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    field = data.attrs["field"]
    M = data["correlation"].shape[0]
    _mean_band(axs[0], data["correlation_lag"].values, data["correlation"].values, "C0",
               f"run: mean ± std of {M} members")
    _mean_band(axs[1], data["rate_time"].values, data["rate_of_change"].values, "C0",
               f"run: mean ± std of {M} members")
    if "reference_correlation" in data:
        R = data["reference_correlation"].shape[0]
        label = f"reference ({R} member{'s' * (R != 1)}{', mean' if R > 1 else ''})"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            axs[0].plot(data["reference_correlation_lag"], np.nanmean(data["reference_correlation"].values, axis=0),
                        color="k", ls="--", lw=1.5, label=label)
            axs[1].plot(data["reference_rate_time"], np.nanmean(data["reference_rate_of_change"].values, axis=0),
                        color="k", ls="--", lw=1.5, label=label)
    axs[0].axhline(0, color="grey", lw=0.8)
    axs[0].set(xlabel="lag τ (model time units)", ylabel="C(τ)",
               title=f"{field}: spatio-temporal correlation (anomalies from each member's time mean)")
    rates = [data[n].values for n in ("rate_of_change", "reference_rate_of_change") if n in data]
    finite = np.concatenate([r[np.isfinite(r)] for r in rates])
    if finite.size and finite.min() > 0:
        axs[1].set_yscale("log")
    axs[1].set(xlabel="time (model units)", ylabel=f"R(t) ({field} units per time unit)",
               title=f"{field}: rate of change, mean |Δx| / Δt over points")
    for ax in axs:
        ax.legend(fontsize=8)
        ax.title.set_fontsize(10)
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
    ("survival.png", "Survival: fraction of members whose diagnostic has stayed inside the reference's mean ± n std "
                     "band against time, exits marked (the reference's own members dashed).", True),
    ("temporal.png", "Spatio-temporal correlation C(τ) and rate of change R(t) of the fields: members' mean ± std, "
                     "the reference dashed.", False),
)


def make_figures(out_dir, fields, diagnostics, reference, data):
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
        "survival.png": lambda p: survival_figure(plt, p, data),
        "temporal.png": lambda p: temporal_figure(plt, p, data),
    }
    absent = {
        "spectra.png": None if diagnostics is not None and diagnostics.spectra else "the run's diagnostics.nc has "
                                                                                   "no spectra",
        "autocorrelation.png": None if "energy_autocorrelation" in data else "the run has no energy series of at "
                                                                              "least 4 diagnostics times",
        "rank_histogram.png": None if reference is None or data["rank_histogram"].attrs["times"] else
        "no common time after the first with a non-zero spread and every member valid",
        "survival.png": data.attrs.get("exit_left_out"),
        "temporal.png": data.attrs.get("temporal_left_out"),
    }
    made, left_out = [], []
    for name, caption, needs_truth in FIGURES:
        why = absent.get(name)  # a figure's own reason first (survival.png names what its band lacks)
        if why is None and needs_truth and reference is None:
            why = "it needs a reference (--reference or the case's [reference])"
        if why:
            left_out.append((name, why))
        else:
            draw[name](os.path.join(out_dir, name))
            made.append((name, caption))
    return made, left_out
