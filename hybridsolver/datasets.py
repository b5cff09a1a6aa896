"""Trajectory datasets with observation noise (``hybridsolver generate``), in the layout of
the multiscale latent-SDE paper: train, validation and test trajectories of a case, each
a set of snapshots on a fixed time grid.

    hybridsolver generate CASE.toml --out DIR [--set a.b=VALUE ...] [--train N]
                          [--validation N] [--test N] [--batch B] [--dtype float32|float64]

writes ``DIR/train.nc``, ``DIR/validation.nc`` and ``DIR/test.nc`` with dims
``(member, time, [layer,] [y,] x)``: for each output variable (``output.fields``;
default the state's fields, ``u`` for ``kdv`` and ``burgers2d``) the clean field and,
as a separate variable ``<field>_noise``, the additive observation noise (the
observations are their sum).  Snapshots are taken at step 0 and every
``output.fields_every`` steps to the case's end (``kdv.toml``: 1001 snapshots on t in
[0, 1]).  The noise standard deviation and the splits come from the case's
``[dataset]`` table:

- ``split = "members"`` (default): the splits are different trajectories, ``train``,
  ``validation`` and ``test`` of them (the options override the counts), each over the
  whole time grid;
- ``split = "time"``: the splits are times of the same ``trajectories``: train the
  snapshots at t <= ``split_times[0]``, validation those up to ``split_times[1]``, test
  the rest (the paper's cylinder: one trajectory, t in [0, 13], (13, 14], (14, 15]).

``window_shape``, ``window_start`` and ``window_spacing`` (``[y, x]``) sample the fields
of a spectral equation at the points of a window instead of the grid's
(:class:`hybridsolver.sampling.Window`, exact Fourier interpolation); the files'
coordinates are then the window's.

Members and streams: trajectory i of split s is ensemble member
``ensemble.first_member + SPLIT_OFFSETS[s] + i`` (with ``split = "time"``,
``first_member + i`` in every split), so its initial condition comes from its own stream
(DESIGN.md section 4) and does not depend on the other splits' sizes; the noise of
snapshot j of the time grid is drawn from the member's ``observation_noise`` stream at
index j.  A trajectory is therefore bit-identical for the same seed whatever the number
of trajectories and the ``--batch`` size (members stepped together).

Members are run in batches of ``--batch``; after each batch each file records how many
trajectories it holds (attribute ``complete``), so a run that is stopped resumes at the
first incomplete batch when started again with the same arguments (``DIR/meta.json``
keeps them).  A trajectory that stops being finite ends the run with an error naming it.
"""
import json
import os

import netCDF4
import numpy as np
from tqdm import tqdm

from . import rng
from .case import CaseError, load_case
from .grid import Grid
from .output import check_meta, define_field_axes, define_records, define_variable
from .sampling import Window

SPLITS = ("train", "validation", "test")
SPLIT_OFFSETS = {"train": 0, "validation": 1_000_000, "test": 2_000_000}
DTYPES = {"float32": "f4", "float64": "f8"}


class DatasetError(RuntimeError):
    """A trajectory stopped being finite."""


def snapshot_steps(case):
    """Steps of the snapshots: 0, fields_every, ... up to the case's last step."""
    every = case.data["output"]["fields_every"]
    if every < 1:
        raise CaseError("output.fields_every: generate needs the steps between snapshots (a positive integer)")
    if case.steps % every:
        raise CaseError(f"output.fields_every: {every} does not divide the case's {case.steps} steps")
    return np.arange(0, case.steps + 1, every)


def split_plan(case, steps):
    """{split: (members, indices of ``steps`` it holds)} of the case's ``[dataset]`` table
    (module docstring); CaseError naming the key for a bad ``split_times``."""
    settings, first = case.data["dataset"], case.data["ensemble"]["first_member"]
    if settings.get("split", "members") == "members":
        for split in SPLITS:
            if settings[split] > SPLIT_OFFSETS["validation"]:
                raise CaseError(f"dataset.{split}: at most {SPLIT_OFFSETS['validation']} trajectories per split, "
                                f"got {settings[split]}")
        everything = np.arange(len(steps))
        return {s: (list(range(first + SPLIT_OFFSETS[s], first + SPLIT_OFFSETS[s] + settings[s])), everything)
                for s in SPLITS}
    bounds = settings.get("split_times")
    times = case.data["time"]["start"] + steps * case.data["time"]["dt"]
    if bounds is None or not times[0] < bounds[0] < bounds[1] < times[-1]:
        raise CaseError(f"dataset.split_times: split = \"time\" needs two times t1 < t2 inside the case's "
                        f"({times[0]:g}, {times[-1]:g}), got {bounds}")
    a, b = (t + 1e-9 * max(1.0, abs(t)) for t in bounds)  # a snapshot at t1 (to round-off) is train's
    members = list(range(first, first + settings.get("trajectories", 1)))
    return {"train": (members, np.flatnonzero(times <= a)),
            "validation": (members, np.flatnonzero((times > a) & (times <= b))),
            "test": (members, np.flatnonzero(times > b))}


def make_window(case, grid):
    """The :class:`Window` of the case's ``dataset.window_*`` keys, None without them;
    CaseError naming the key when only some are given or the grid is not a 2D spectral one."""
    settings = case.data["dataset"]
    keys = ("window_shape", "window_start", "window_spacing")
    given = [k for k in keys if k in settings]
    if not given:
        return None
    if len(given) < len(keys):
        missing = next(k for k in keys if k not in settings)
        raise CaseError(f"dataset.{missing}: missing (a window needs window_shape, window_start and window_spacing)")
    if not isinstance(grid, Grid):
        raise CaseError(f"dataset.window_shape: a window samples the fields of a doubly periodic spectral grid "
                        f"(navier_stokes2d, qg2layer), not {case.data['equation']['name']}'s")
    return Window(grid, settings["window_start"], settings["window_spacing"], settings["window_shape"])


def snapshot(sim, window):
    """{name: (M, *shape)} of ``sim``'s output variables: on the grid, or at the points of
    ``window`` (a :class:`Window` or None)."""
    if window is None:
        return sim.output_fields()
    eq = sim.equation
    spectra = eq.spectral_fields(sim.state) | eq.derived_spectra(sim.state, sim.output_names)
    return {name: window.sample(spectra[name]) for name in sim.output_names}


def _create(path, sim, case, split, steps, dtype, meta, window):
    """An empty split file for ``len(steps)`` snapshots of ``sim``'s output variables
    (``case``: the resolved case it records; ``window``: the points, None for the grid's)."""
    with netCDF4.Dataset(path, "w") as ds:
        define_records(ds, sim, f"hybridsolver {sim.equation.name} dataset: {split} split", records=len(steps))
        ds["time"][:] = sim.time_at(steps)
        ds["step"][:] = steps
        for name, (dims, shape) in define_field_axes(ds, sim, window).items():
            dims, chunks = ("member", "time") + dims, (1, 1) + shape
            clean = define_variable(ds, sim, name, DTYPES[dtype], dims, chunksizes=chunks)
            clean.long_name = f"{clean.long_name} (clean)"
            noise = ds.createVariable(f"{name}_noise", DTYPES[dtype], dims, chunksizes=chunks)
            noise.setncatts({"long_name": f"additive observation noise of {name} (observations: {name} + {name}_noise)",
                             "units": clean.units, "std": meta["observation_noise"]})
        ds.split = split
        ds.case = case.to_toml()
        ds.meta = json.dumps(meta)
        ds.complete = 0


def _complete(path):
    with netCDF4.Dataset(path) as ds:
        return int(ds.complete)


def _run_batch(targets, case, members, row, steps, noise_std, window, bar):
    """Step ``members`` together and write their snapshots and noise, from row ``row``,
    into the files of ``targets`` ({path: indices of ``steps`` the file holds}), sampled at
    ``window``'s points (None: the grid's)."""
    from .simulation import Simulation  # numba kernels load only for real work

    sim = Simulation.from_case(case.data, {"ensemble.first_member": members[0], "ensemble.members": len(members)})
    files = {path: netCDF4.Dataset(path, "a") for path in targets}
    try:
        rows = slice(row, row + len(members))
        slot = {}  # snapshot index -> (file, its time index)
        for path, ds in files.items():
            ds["member"][rows] = members
            slot.update({j: (ds, i) for i, j in enumerate(targets[path])})
        for j, step in enumerate(steps):
            sim.advance(step - sim.step)
            finite = sim.finite_members()
            if not finite.all():
                bad = [m for m, ok in zip(members, finite) if not ok]
                raise DatasetError(f"{next(iter(targets))}: member {bad[0]} stopped being finite by step {step}")
            if j in slot:
                ds, i = slot[j]
                for name, field in snapshot(sim, window).items():
                    ds[name][rows, i] = field
                    noise = rng.standard_normal(sim.seed, members, "observation_noise", j, field.shape[1:])
                    ds[f"{name}_noise"][rows, i] = noise_std * noise
            bar.update(len(members))
        for ds in files.values():
            ds.complete = row + len(members)
    finally:
        for ds in files.values():
            ds.close()


def generate(case_path, out, overrides=None, counts=None, batch=64, dtype="float32", progress=True):
    """Write (or complete) the split files of a case in folder ``out``; returns their paths.

    ``counts`` overrides the case's ``dataset.train``/``validation``/``test``.
    """
    if batch < 1:
        raise CaseError(f"--batch: expected a positive number of members, got {batch}")
    if dtype not in DTYPES:
        raise CaseError(f"--dtype: expected one of {', '.join(DTYPES)}, got {dtype!r}")
    overrides = dict(overrides or {})
    for split, n in (counts or {}).items():
        if n is not None:
            overrides[f"dataset.{split}"] = n
    case = load_case(case_path, overrides)
    steps = snapshot_steps(case)
    plan = split_plan(case, steps)
    noise_std = case.data["dataset"]["observation_noise"]
    from .simulation import Simulation

    probe = Simulation.from_case(case.data, {"ensemble.members": 1})  # checks the case before anything is written
    window = make_window(case, probe.grid)
    meta = {"case": case.to_toml(), "dtype": dtype}  # the case holds the counts and the noise
    check_meta(out, meta)
    # splits of different members are filled one after another; splits in time together
    groups = [(s,) for s in SPLITS] if case.data["dataset"].get("split", "members") == "members" else [SPLITS]
    paths = {s: os.path.join(out, f"{s}.nc") for s in SPLITS}
    total = sum(len(plan[g[0]][0]) for g in groups) * len(steps)
    with tqdm(total=total, unit="snapshot", disable=not progress, dynamic_ncols=True) as bar:
        for group in groups:
            for split in group:
                if not os.path.exists(paths[split]):
                    _create(paths[split], probe, case, split, steps[plan[split][1]], dtype,
                            {"observation_noise": noise_std, "seed": probe.seed}, window)
            members = plan[group[0]][0]
            done = min(_complete(paths[s]) for s in group)
            bar.update(done * len(steps))
            for lo in range(done, len(members), batch):
                _run_batch({paths[s]: plan[s][1] for s in group}, case, members[lo:lo + batch], lo, steps,
                           noise_std, window, bar)
    return [paths[s] for s in SPLITS]
