"""Scores of an ensemble run against a reference, and its report (``hybridsolver report``).

    hybridsolver report RUN_DIR [--reference DIR_OR_FILE] [--member N] [--sigmas N]

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

Rollout scores (:mod:`hybridsolver.stability`): each member's first step outside the
reference's mean ± ``--sigmas`` std of a diagnostic (``energy``), the surviving fraction,
the spatio-temporal correlation C(τ) and the rate of change R(t) of the fields, for the
run's members and the reference's alike.

The subpackage: :mod:`.load` (reading run directories and references), :mod:`.scoring`
(``scores.nc``), :mod:`.figures` (the PNGs), :mod:`.index` (``index.html``); this module
re-exports their public names and holds :func:`report`, which chains them.
"""
import math
import os

from ..case import CaseError
from . import figures as _figures
from .figures import (
    BAND,
    FIGURES,
    MAX_SNAPSHOTS,
    autocorrelation_figure,
    distance_figure,
    growth_figure,
    mean_std_figure,
    rank_histogram_figure,
    snapshot_figure,
    spectra_figure,
    spread_skill_figure,
    survival_figure,
    temporal_figure,
)
from .index import score_rows, stability_rows, write_index
from .load import (
    NOT_FIELDS,
    TIME_RTOL,
    Diagnostics,
    Fields,
    Reference,
    check_grid,
    common_times,
    load_reference,
    load_run,
    open_diagnostics,
    open_fields,
    read_summary,
    reference_source,
)
from .scoring import (
    ROUND_OFF,
    SPECTRUM_FLOOR,
    band_scores,
    energy_autocorrelation,
    field_scores,
    no_spread,
    scores,
    spectral_scores,
    spread,
    temporal_scores,
    write_scores,
)

SIGMAS = 5.0  # default half-width of the exit band, in reference standard deviations (--sigmas)
DIAGNOSTIC = "energy"  # default diagnostic whose band the exit steps are measured against


def report(run_dir, reference=None, member=None, sigmas=SIGMAS, diagnostic=DIAGNOSTIC):
    """Write ``RUN_DIR/scores.nc`` and ``RUN_DIR/report/`` (the PNG figures of
    :data:`FIGURES` and ``index.html``) for run directory ``run_dir``; returns the paths
    written, ``index.html`` last.

    ``reference`` (a run directory or a truth netCDF file) and ``member`` (the row of its
    truth member) default to the run's ``[reference]`` case table; without a reference
    the figures that need a truth are left out and ``index.html`` says so.  ``sigmas``
    (> 0) and ``diagnostic`` set the band of the exit steps and survival: the reference's
    mean ± ``sigmas`` std of ``diagnostic`` (it needs a reference run directory).
    """
    if not (isinstance(sigmas, (int, float)) and math.isfinite(sigmas) and sigmas > 0):
        raise CaseError(f"--sigmas: expected a positive number of standard deviations, got {sigmas}")
    fields, diagnostics = load_run(run_dir)
    source, member = reference_source(run_dir, reference, member)
    truth = load_reference(source, fields, member) if source is not None else None
    data = scores(fields, diagnostics, truth, sigmas, diagnostic)
    paths = [write_scores(data, os.path.join(run_dir, "scores.nc"))]
    out_dir = os.path.join(run_dir, "report")
    os.makedirs(out_dir, exist_ok=True)
    made, left_out = _figures.make_figures(out_dir, fields, diagnostics, truth, data)
    paths += [os.path.join(out_dir, name) for name, _ in made]
    paths.append(write_index(os.path.join(out_dir, "index.html"), run_dir, made, left_out, data,
                             read_summary(run_dir)))
    return paths
