"""The run directory: ``case.toml``, ``fields.nc``, ``diagnostics.nc``, ``summary.json``.

``fields.nc`` has dims ``(member, time, y, x)`` with one variable per field
(``(member, time, x)`` on 1D grids), and ``(member, time, layer, y, x)`` for layered
fields (``qg2layer``'s ``q``);
``diagnostics.nc`` has per-member scalars ``(member, time)`` and isotropic spectra
``(member, time, k)``.  Both grow along an unlimited ``time`` axis and hold the int8
mask ``valid`` ``(member, time)``: 0 for members quarantined by then, whose values are
written as NaN.  Each write opens
the file, appends and closes it, so between writes the file on disk is complete;
diagnostics are buffered in memory and flushed every ``flush_seconds`` and at every
fields write.  ``case.toml`` and ``summary.json`` are replaced atomically (written to
a temporary file, then renamed).
"""
import contextlib
import json
import math
import os
import time
import tomllib

import netCDF4
import numpy as np

from . import cf
from .case import CaseError


class WriteError(Exception):
    """Writing file ``path`` failed (no space, quota, I/O error, permission): ``error`` is
    the OSError.  Temporary files of the write are removed before it is raised."""

    def __init__(self, path, error):
        self.path, self.error = path, error
        super().__init__(f"{path}: {getattr(error, 'strerror', None) or error}")


def _remove(path):
    """Remove ``path`` if it exists (a failed write's temporary file)."""
    try:
        os.remove(path)
    except OSError:
        pass


@contextlib.contextmanager
def writing(path, tmp=None):
    """Turn a failure to write ``path`` (an OSError, or netCDF's RuntimeError of a full
    disk) into :class:`WriteError`, removing the temporary file ``tmp`` first."""
    try:
        yield
    except (OSError, RuntimeError) as exc:
        if tmp:
            _remove(tmp)
        raise WriteError(path, exc) from None


def write_atomic(path, text):
    """Write ``text`` to ``path`` through a temporary file and an atomic rename;
    :class:`WriteError` (temporary file removed) when the disk refuses."""
    tmp = f"{path}.tmp"
    with writing(path, tmp):
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def save_npz_atomic(path, arrays):
    """Write ``{name: array}`` to the .npz file ``path`` through a temporary file and an
    atomic rename; :class:`WriteError` (temporary file removed) when the disk refuses."""
    tmp = f"{path}.tmp.npz"
    with writing(path, tmp):
        np.savez(tmp, **arrays)
        os.replace(tmp, path)


def write_summary(run_dir, summary):
    """Write ``summary`` (a JSON-able dict) to ``run_dir/summary.json`` atomically."""
    write_atomic(os.path.join(run_dir, "summary.json"), json.dumps(summary, indent=2) + "\n")


def check_meta(out, meta):
    """Write ``out/meta.json`` (the arguments of a resumable job writing into folder
    ``out``), or check that the job that started the folder had the same ``meta``;
    raises :class:`hybridsolver.case.CaseError` naming the first key that differs."""
    path = os.path.join(out, "meta.json")
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        for key, value in meta.items():
            if old.get(key) != value:
                raise CaseError(f"{path}: this folder was generated with {key} = {old.get(key)!r}, now {value!r} "
                                "(use another --out, or the same arguments to resume)")
        return
    os.makedirs(out, exist_ok=True)
    write_atomic(path, json.dumps(meta, indent=1))


def define_field_axes(ds, sim, window=None):
    """Create in netCDF dataset ``ds`` the grid's axes (``y``, ``x`` or ``x``, with their
    coordinates; those of ``window``, a :class:`hybridsolver.sampling.Window`, where given)
    and, for layered fields, ``layer``; returns {field: (dims, one member's shape)} for
    ``sim``'s output variables (``output.fields``), dims without the leading member and
    time axes."""
    system = cf.units_system(sim.equation.name)
    axes = (window or sim.grid).coordinates()
    for axis, values in axes.items():
        ds.createDimension(axis, len(values))
        var = ds.createVariable(axis, "f8", (axis,))
        var[:] = values
        var.setncatts(cf.axis_attributes(axis, system))
    out = {}
    for name in sim.output_names:
        shape = sim.field_shape(name)
        layered = len(shape) > len(axes)
        if layered and "layer" not in ds.dimensions:
            ds.createDimension("layer", shape[0])
            var = ds.createVariable("layer", "i8", ("layer",))
            var[:] = np.arange(1, shape[0] + 1)
            var.setncatts(cf.axis_attributes("layer", system))
        out[name] = (("layer",) * layered + tuple(axes), shape[:layered] + tuple(len(v) for v in axes.values()))
    return out


def define_records(ds, sim, title, members=None, records=None):
    """Create in netCDF dataset ``ds`` the CF global attributes (:func:`hybridsolver.cf.global_attributes`
    with ``title``) and ``equation``, the ``member`` axis of ``members`` entries and the
    ``time`` axis of ``records`` entries (None: unlimited), and their coordinates ``member``,
    ``time`` and ``step`` (along ``time``), with attributes and without values."""
    system = cf.units_system(sim.equation.name)
    ds.setncatts(cf.global_attributes(title, system) | {"equation": sim.equation.name})
    ds.createDimension("member", members)
    ds.createDimension("time", records)
    for name, dtype, dims in (("member", "i8", ("member",)), ("time", "f8", ("time",)), ("step", "i8", ("time",))):
        ds.createVariable(name, dtype, dims).setncatts(cf.coordinate_attributes(name, system))


def define_variable(ds, sim, name, dtype, dims, **settings):
    """Create variable ``name`` of ``sim``'s equation (a field or diagnostic) in ``ds`` with its
    CF ``long_name`` and ``units`` (:func:`hybridsolver.cf.variable_attributes`); ``settings``
    go to ``createVariable`` (e.g. ``chunksizes``).  Returns the variable."""
    var = ds.createVariable(name, dtype, dims, **settings)
    var.setncatts(cf.variable_attributes(sim.equation.name, name))
    return var


def rewrite_records(sources, dst, last_step=None):
    """Write the run-directory netCDF file ``dst`` from ``sources``: files of one run with
    the same records (``step`` along ``time``) holding consecutive members, in member
    order (one file, or the parts of a run split by member).  ``dst`` gets the first
    source's dimensions, variables, attributes and chunking with the ``member`` axis
    concatenated, and only the records with ``step <= last_step`` (all without it).
    Written in blocks of records to ``dst.tmp`` and renamed, so ``dst`` may be a source and
    is never left half-written."""
    tmp = f"{dst}.tmp"
    srcs = [netCDF4.Dataset(path) for path in sources]
    try:
        for src in srcs:
            src.set_auto_mask(False)
        first = srcs[0]
        steps = first["step"][:]
        for path, src in zip(sources[1:], srcs[1:]):
            if not np.array_equal(src["step"][:], steps):
                raise CaseError(f"{path}: its records (steps) differ from those of {sources[0]}")
        kept = complete_records(steps, last_step)
        members = sum(len(src.dimensions["member"]) for src in srcs)
        with netCDF4.Dataset(tmp, "w") as out:
            out.setncatts(first.__dict__)
            for name, dim in first.dimensions.items():
                out.createDimension(name, None if dim.isunlimited() else members if name == "member" else len(dim))
            for name in first.variables:
                _copy_variable(out, name, [src[name] for src in srcs], kept, members)
    finally:
        for src in srcs:
            src.close()
    os.replace(tmp, dst)


def complete_records(steps, last_step=None):
    """The number of leading records of a run-directory file whose ``steps`` (raw values,
    increasing; an unset step, a record a kill interrupted, holds the fill value) are
    set, and at most ``last_step`` when given."""
    ok = steps >= 0  # netCDF's int64 fill value is negative
    if last_step is not None:
        ok &= steps <= last_step
    return int(np.argmin(ok)) if not ok.all() else len(steps)


COPY_BYTES = 1 << 26  # rewrite_records copies at most this many bytes of a variable at once


def _copy_variable(out, name, parts, kept, members):
    """Create variable ``name`` in ``out`` like ``parts[0]`` and fill it: parts
    concatenated along ``member`` (if it has that axis), the first ``kept`` records of
    ``time``, copied in blocks of records of at most ``COPY_BYTES``."""
    var = parts[0]
    dims = var.dimensions
    chunks = var.chunking()
    if chunks != "contiguous" and "member" in dims:
        chunks = list(chunks)
        chunks[dims.index("member")] = min(chunks[dims.index("member")], members)
    attrs = dict(var.__dict__)
    new = out.createVariable(name, var.dtype, dims, chunksizes=None if chunks == "contiguous" else chunks,
                             fill_value=attrs.pop("_FillValue", None))
    new.setncatts(attrs)
    if "member" not in dims:
        parts = parts[:1]

    def block(records):
        index = tuple(records if d == "time" else slice(None) for d in dims)
        values = [p[index] for p in parts]
        return np.concatenate(values, axis=dims.index("member")) if "member" in dims else values[0]

    if "time" not in dims:
        new[...] = block(None)
        return
    record_bytes = var.dtype.itemsize * math.prod(
        members if d == "member" else size for d, size in zip(dims, var.shape) if d != "time")
    per_block = max(1, COPY_BYTES // record_bytes)
    for start in range(0, kept, per_block):
        records = slice(start, min(start + per_block, kept))
        new[tuple(records if d == "time" else slice(None) for d in dims)] = block(records)


def read_run_case(run_dir):
    """The resolved case (nested dict) that started run directory ``run_dir`` (its
    ``case.toml``); CaseError naming the file when it is missing or damaged."""
    path = os.path.join(run_dir, "case.toml")
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise CaseError(f"{path}: missing (not a run directory)") from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CaseError(f"{path}: damaged ({exc}); resume needs the case the run was started with") from None


def read_diagnostic(path, name):
    """The finite values of per-member diagnostic ``name`` ``(member, time)`` in the
    ``diagnostics.nc`` file ``path``, flattened; CaseError naming the file otherwise."""
    if not os.path.isfile(path):
        raise CaseError(f"{path}: missing")
    with netCDF4.Dataset(path) as ds:
        if name not in ds.variables:
            raise CaseError(f"{path}: no diagnostic '{name}'")
        values = np.asarray(ds[name][...], dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size < 2:
        raise CaseError(f"{path}: fewer than 2 finite values of '{name}'")
    return values


def read_series(path, names):
    """``(time (T,), {name: (M, T) float64})`` of per-member diagnostics ``names`` in the
    ``diagnostics.nc`` file ``path`` (records of unset steps left out)."""
    with netCDF4.Dataset(path) as ds:
        ds.set_auto_mask(False)
        kept = complete_records(ds["step"][:])
        return (np.asarray(ds["time"][:kept], dtype=np.float64),
                {name: np.asarray(ds[name][:, :kept], dtype=np.float64) for name in names})


class RunWriter:
    """Writes one run directory for a :class:`hybridsolver.Simulation`; with ``resume``,
    continues the one ``sim`` started, dropping the records after ``sim.step``."""

    def __init__(self, run_dir, sim, flush_seconds=5.0, resume=False):
        self.dir = run_dir
        os.makedirs(run_dir, exist_ok=True)
        self.sim = sim
        self.flush_seconds = flush_seconds
        self.fields_path = os.path.join(run_dir, "fields.nc")
        self.diagnostics_path = os.path.join(run_dir, "diagnostics.nc")
        self._pending = []
        self._last_flush = time.monotonic()
        if resume:
            out = sim.case.data["output"]
            self._truncate(self.fields_path, out["fields_every"])
            if out["diagnostics_every"]:
                self._truncate(self.diagnostics_path, out["diagnostics_every"])
            return
        write_atomic(os.path.join(run_dir, "case.toml"), sim.case.to_toml())
        with writing(self.fields_path):
            self._create_fields()
        with writing(self.diagnostics_path):
            self._create_diagnostics()

    def _truncate(self, path, every):
        """Keep the complete records of ``path`` up to the resumed step (:func:`rewrite_records`);
        CaseError naming the file when it is missing, unreadable, or lacks a record written
        before the checkpoint (every ``every`` steps from 0)."""
        step = self.sim.step
        try:
            with netCDF4.Dataset(path) as ds:
                ds.set_auto_mask(False)
                steps = ds["step"][:]
                for var in ds.variables.values():  # every value readable (a damaged file fails here)
                    var[...]
        except (OSError, RuntimeError, IndexError) as exc:
            raise CaseError(f"{path}: missing or damaged ({exc}); cannot resume this run directory") from None
        kept = steps[:complete_records(steps, step)]
        last = kept[-1] if kept.size else None
        if last is None or (every and last < step // every * every):
            raise CaseError(f"{path}: its complete records end at step {last}, the checkpoint is at step {step} "
                            f"(records every {every} steps): records before the checkpoint are missing; cannot "
                            "resume this run directory")
        with writing(path, f"{path}.tmp"):
            rewrite_records([path], path, last_step=step)

    def _coordinates(self, ds, title):
        sim = self.sim
        define_records(ds, sim, title, members=len(sim.members))
        ds["member"][:] = np.asarray(sim.members)
        valid = ds.createVariable("valid", "i1", ("member", "time"), chunksizes=(len(sim.members), 64))
        valid.setncatts(cf.coordinate_attributes("valid", cf.units_system(sim.equation.name)))
        ds.case = sim.case.to_toml()

    def _create_fields(self):
        with netCDF4.Dataset(self.fields_path, "w") as ds:
            self._coordinates(ds, f"hybridsolver {self.sim.equation.name} ensemble: fields")
            for name, (dims, shape) in define_field_axes(ds, self.sim).items():
                define_variable(ds, self.sim, name, "f8", ("member", "time") + dims, chunksizes=(1, 1) + shape)

    def _create_diagnostics(self):
        sim = self.sim
        scalars = sim.equation.diagnostics(sim.state, sim.dt)
        spectra = sim.equation.spectra(sim.state)
        M = len(sim.members)
        with netCDF4.Dataset(self.diagnostics_path, "w") as ds:
            self._coordinates(ds, f"hybridsolver {sim.equation.name} ensemble: diagnostics")
            if spectra:
                _, k = sim.grid.shells()
                ds.createDimension("k", len(k))
                var = ds.createVariable("k", "f8", ("k",))
                var[:] = k
                var.setncatts(cf.coordinate_attributes("k", cf.units_system(sim.equation.name)))
            for name in scalars:
                define_variable(ds, sim, name, "f8", ("member", "time"), chunksizes=(M, 64))
            for name in spectra:
                define_variable(ds, sim, name, "f8", ("member", "time", "k"), chunksizes=(M, 16, len(k)))

    def _append(self, path, records):
        """Append records ``[(step, time, {name: (M, ...) array})]`` along ``time``; the
        ``step`` last, so that a record whose step is unset was not completed (a kill
        during the append; :func:`complete_records`).  :class:`WriteError` when the disk
        refuses."""
        with writing(path), netCDF4.Dataset(path, "a") as ds:
            start = len(ds.dimensions["time"])
            stop = start + len(records)
            for name in records[0][2]:
                ds.variables[name][:, start:stop] = np.stack([r[2][name] for r in records], axis=1)
            ds.variables["time"][start:stop] = [r[1] for r in records]
            ds.variables["step"][start:stop] = [r[0] for r in records]

    def _masked(self, values):
        """``values`` ({name: (M, ...)}) with the quarantined members' rows set to NaN, and
        the ``valid`` mask (M,)."""
        quarantined = self.sim.quarantined
        if quarantined.any():
            values = {name: np.where(quarantined.reshape((-1,) + (1,) * (v.ndim - 1)), np.nan, v)
                      for name, v in values.items()}
        return values | {"valid": (~quarantined).astype(np.int8)}

    def write_fields(self, step, t, fields):
        self.flush()
        self._append(self.fields_path, [(step, t, self._masked(fields))])

    def write_diagnostics(self, step, t, values):
        self._pending.append((step, t, self._masked(values)))
        if time.monotonic() - self._last_flush > self.flush_seconds:
            self.flush()

    def flush(self):
        if self._pending:
            self._append(self.diagnostics_path, self._pending)
            self._pending = []
        self._last_flush = time.monotonic()

    def write_summary(self, summary):
        write_summary(self.dir, summary)
