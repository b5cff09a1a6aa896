"""Trajectory datasets with observation noise (``hybridsolver generate``), in the layout of
the multiscale latent-SDE paper: train, validation and test trajectories of a case, each
a set of snapshots on a fixed time grid.

    hybridsolver generate CASE.toml --out DIR [--set a.b=VALUE ...] [--train N]
                          [--validation N] [--test N] [--batch B] [--dtype float32|float64]

writes ``DIR/train.nc``, ``DIR/validation.nc`` and ``DIR/test.nc`` with dims
``(member, time, [layer,] [y,] x)``: for each state field (``u`` for ``kdv`` and
``burgers2d``) the clean field and, as a separate variable ``<field>_noise``, the
additive observation noise (the observations are their sum).  Snapshots are taken at
step 0 and every ``output.fields_every`` steps to the case's end (``kdv.toml``: 1001
snapshots on t in [0, 1]).  The numbers of trajectories and the noise standard
deviation come from the case's ``[dataset]`` table (``train``, ``validation``, ``test``,
``observation_noise``); the options override the counts.

Members and streams: trajectory i of split s is ensemble member
``ensemble.first_member + SPLIT_OFFSETS[s] + i``, so its initial condition comes from its
own stream (DESIGN.md section 4) and does not depend on the other splits' sizes; the
noise of snapshot j is drawn from the member's ``observation_noise`` stream at index j.
A trajectory is therefore bit-identical for the same seed whatever the number of
trajectories and the ``--batch`` size (members stepped together).

Members are run in batches of ``--batch``; after each batch the file records how many
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
from .output import check_meta, define_field_axes

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


def _create(path, sim, case, split, steps, dtype, meta):
    """An empty split file for ``len(steps)`` snapshots of ``sim``'s fields (``case``: the
    resolved case it records)."""
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("member", None)
        ds.createDimension("time", len(steps))
        ds.createVariable("member", "i8", ("member",))
        ds.createVariable("time", "f8", ("time",))[:] = steps * sim.dt
        ds.createVariable("step", "i8", ("time",))[:] = steps
        for name, (dims, shape) in define_field_axes(ds, sim).items():
            dims, chunks = ("member", "time") + dims, (1, 1) + shape
            ds.createVariable(name, DTYPES[dtype], dims, chunksizes=chunks).long_name = f"clean {name}"
            noise = ds.createVariable(f"{name}_noise", DTYPES[dtype], dims, chunksizes=chunks)
            noise.long_name = f"additive observation noise of {name} (observations: {name} + {name}_noise)"
            noise.std = meta["observation_noise"]
        ds.split = split
        ds.equation = sim.equation.name
        ds.case = case.to_toml()
        ds.meta = json.dumps(meta)
        ds.complete = 0


def _complete(path):
    with netCDF4.Dataset(path) as ds:
        return int(ds.complete)


def _run_batch(path, case, members, steps, noise_std, bar):
    """Step ``members`` together and write their snapshots and noise into ``path``."""
    from .simulation import Simulation  # numba kernels load only for real work

    sim = Simulation.from_case(case.data, {"ensemble.first_member": members[0], "ensemble.members": len(members)})
    with netCDF4.Dataset(path, "a") as ds:
        first = int(ds.complete)
        rows = slice(first, first + len(members))
        ds["member"][rows] = members
        for j, step in enumerate(steps):
            sim.advance(step - sim.step)
            finite = sim.finite_members()
            if not finite.all():
                bad = [m for m, ok in zip(members, finite) if not ok]
                raise DatasetError(f"{path}: member {bad[0]} stopped being finite by step {step}")
            for name, field in sim.fields().items():
                ds[name][rows, j] = field
                noise = rng.standard_normal(sim.seed, members, "observation_noise", j, field.shape[1:])
                ds[f"{name}_noise"][rows, j] = noise_std * noise
            bar.update(len(members))
        ds.complete = first + len(members)


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
    settings = case.data["dataset"]
    for split in SPLITS:
        if settings[split] > SPLIT_OFFSETS["validation"]:
            raise CaseError(f"dataset.{split}: at most {SPLIT_OFFSETS['validation']} trajectories per split, "
                            f"got {settings[split]}")
    meta = {"case": case.to_toml(), "dtype": dtype}  # the case holds the counts and the noise
    check_meta(out, meta)
    first_member = case.data["ensemble"]["first_member"]
    paths = []
    total = sum(settings[s] for s in SPLITS) * len(steps)
    from .simulation import Simulation

    probe = Simulation.from_case(case.data, {"ensemble.members": 1})  # checks the case before anything is written
    with tqdm(total=total, unit="snapshot", disable=not progress, dynamic_ncols=True) as bar:
        for split in SPLITS:
            path = os.path.join(out, f"{split}.nc")
            paths.append(path)
            if not os.path.exists(path):
                _create(path, probe, case, split, steps, dtype, {"observation_noise": settings["observation_noise"],
                                                           "seed": probe.seed})
            done = _complete(path)
            bar.update(done * len(steps))
            base = first_member + SPLIT_OFFSETS[split]
            for lo in range(done, settings[split], batch):
                members = list(range(base + lo, base + min(lo + batch, settings[split])))
                _run_batch(path, case, members, steps, settings["observation_noise"], bar)
    return paths
