"""Reading a run directory and its reference for ``hybridsolver report``.

:class:`Fields` (one field of a ``fields.nc`` or truth file, read one time at a time),
:class:`Diagnostics` (a ``diagnostics.nc``), :class:`Reference` (the truth), the loaders
(:func:`load_run`, :func:`reference_source`, :func:`load_reference`, with the grid check)
and :func:`common_times`, the matching of the run's and the reference's records.  Shapes:
a field at one time is ``(M, [layer,] [y,] x)``, members first (DESIGN.md section 3).
"""
import json
import os
from dataclasses import dataclass

import netCDF4
import numpy as np

from ..case import CaseError, load_case, resolve_path

TIME_RTOL = 1e-9  # times of the run and of the reference match to this relative tolerance
NOT_FIELDS = ("member", "time", "step", "valid")  # variables along (member, time) that are not fields


@dataclass
class Fields:
    """One field of a netCDF file with dims ``(member, time, [layer,] [y,] x)``, read one
    time at a time.

    ``time`` (T,) model time; ``members`` (M,) member ids; ``valid`` bool (M, T);
    ``axes`` {axis name: coordinate values} of the grid (``y`` and ``x``, or ``x``);
    ``shape`` one member's field shape, ``([layers,] [ny,] nx)``; ``units`` the field's
    ``units`` attribute (None where it has none) and ``units_system`` the file's
    (``"SI"`` or ``"nondimensional"``, :mod:`hybridsolver.cf`).
    """
    path: str
    name: str
    time: np.ndarray
    members: np.ndarray
    valid: np.ndarray
    axes: dict
    shape: tuple
    units: str = None
    units_system: str = "nondimensional"

    def at(self, i):
        """Every member's field at time index ``i``: (M, *shape) float64, rows of invalid
        members included (select with ``valid[:, i]``)."""
        with netCDF4.Dataset(self.path) as ds:
            ds.set_auto_mask(False)
            return np.asarray(ds[self.name][:len(self.members), i], dtype=np.float64)

    def valid_at(self, i):
        """The fields of the members valid at time index ``i``: (M_valid, *shape)."""
        return self.at(i)[self.valid[:, i]]

    def member(self, row):
        """Member row ``row``'s field at every time: (T, *shape) float64, invalid records
        included (select with ``valid[row]``)."""
        with netCDF4.Dataset(self.path) as ds:
            ds.set_auto_mask(False)
            return np.asarray(ds[self.name][row, :len(self.time)], dtype=np.float64)


@dataclass
class Diagnostics:
    """A run's ``diagnostics.nc``: ``time`` (T,), ``members`` (M,) member ids, ``valid``
    bool (M, T) (the file's flag and finite values), ``scalars`` {name: (M, T)},
    ``spectra`` {name: (M, T, nk)} on the shell wavenumbers ``k`` (nk,), ``steps`` (T,)
    the records' step numbers (None where the file has no ``step``)."""
    path: str
    time: np.ndarray
    members: np.ndarray
    valid: np.ndarray
    scalars: dict
    spectra: dict
    k: np.ndarray
    steps: np.ndarray = None


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
                      tuple(var.shape[2:]), getattr(var, "units", None), getattr(ds, "units_system", "nondimensional"))


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
        steps = np.asarray(ds["step"][:], dtype=np.int64) if "step" in ds.variables else None
    for values in data.values():
        valid &= np.isfinite(values).reshape(M, T, -1).all(axis=-1)
    return Diagnostics(path, time, members, valid, {n: v for n, v in data.items() if v.ndim == 2},
                       {n: v for n, v in data.items() if v.ndim == 3}, k, steps)


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

