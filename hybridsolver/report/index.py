"""``index.html`` of ``hybridsolver report``: the run's summary, its scores table, the
figures (shown and linked), the figures left out and why, and the case file."""
import html
import math
import os

import numpy as np

from ..output import write_atomic


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
    for name in ("spread_skill", "rmse", "spread", "crps", "coverage95", "wasserstein1", "spectral_rmse"):
        if name in data:
            values = data[name].values
            rows.append((name, values[-1], np.nanmean(values[1:]) if np.isfinite(values[1:]).any() else np.nan))
    return rows


def _inside(data, prefix):
    exits, surv = data[f"{prefix}exit_step"].values, data[f"{prefix}survival"].values
    return f"{int(np.sum(exits < 0))} of {len(exits)} (survival {surv[-1]:.3g} at t = " \
           f"{data[f'{prefix}survival_time'].values[-1]:.4g})"


def _nan_mean(values):
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan


def stability_rows(data):
    """``[(item, value)]`` of the rollout scores: the band, the members inside it at the
    last record and the first exit (or why they were left out), and the members' mean
    C(τ) at the largest lag and R(t) over the last interval, run and reference."""
    if "exit_step" in data:
        attrs = data["exit_step"].attrs
        exits = data["exit_step"].values
        first = "none"
        if (exits >= 0).any():
            step = exits[exits >= 0].min()
            first = f"step {step} (member {', '.join(str(m) for m in data['member'].values[exits == step])})"
        rows = [("band", f"{attrs['diagnostic']} in [{attrs['band_low']:.4g}, {attrs['band_high']:.4g}] (reference "
                         f"mean ± {attrs['sigmas']:g} std)"),
                ("run members never leaving it", _inside(data, "")), ("first exit of a run member", first),
                ("reference members never leaving it", _inside(data, "reference_"))]
    else:
        rows = [("exit steps and survival", f"left out: {data.attrs['exit_left_out']}")]
    for name, coord, label in (("correlation", "correlation_lag", "C(τ) at τ = {:.4g}, members' mean"),
                               ("rate_of_change", "rate_time", "R(t) at t = {:.4g}, members' mean")):
        if name in data:
            values = [_number(_nan_mean(data[name].values[:, -1]))]
            if f"reference_{name}" in data:
                values.append(f"reference {_number(_nan_mean(data[f'reference_{name}'].values[:, -1]))} at "
                              f"{data[f'reference_{coord}'].values[-1]:.4g}")
            rows.append((label.format(data[coord].values[-1]), "; ".join(values)))
    if "correlation" not in data:
        rows.append(("C(τ) and R(t)", f"left out: {data.attrs.get('temporal_left_out', 'no fields')}"))
    return rows


def _table(rows, header=None):
    head = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def write_index(path, run_dir, made, left_out, data, summary):
    """Write ``index.html``: the run's summary and mean scores, every figure (linked and
    shown), the figures left out and why, and the case file."""
    case_path = os.path.join(run_dir, "case.toml")
    case_text = "(no case.toml)"
    if os.path.isfile(case_path):
        with open(case_path) as f:
            case_text = f.read()
    reference = data.attrs["reference"]
    t = data["time"].values
    scores = [(n, data[n].attrs.get("units", ""), _number(last), _number(mean)) for n, last, mean in score_rows(data)]
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
        "<h2>Rollout stability</h2>", _table(stability_rows(data)),
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
