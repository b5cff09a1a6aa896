"""Subgrid PV forcing of ``qg2layer`` for closure training: a high-resolution ensemble
coarse-grained to a low-resolution grid (the operators of Ross et al. 2023).

A coarse-graining operator ``bar`` truncates the unnormalised spectrum of a fine field
to the coarse grid's wavenumbers (:func:`hybridsolver.grid.coarsen`: the coarse Nyquist
modes are zeroed, the rest rescaled for the transform size) and multiplies it by a
filter of the coarse grid:

- ``sharp``: pyqg's exponential filter of the low-resolution model (1 for
  ``|k| dx <= 0.65 pi``, ``exp(-filterfac (|k| dx - 0.65 pi)^4)`` beyond);
- ``gaussian``: ``exp(-|k|^2 (2 dx)^2 / 24)``, a Gaussian of width ``2 dx``.

The subgrid PV forcing is what the low-resolution model misses of the filtered fine
tendency,

    S_q = bar(N_fine(q)) - N_coarse(bar(q)),

with ``N`` the model's tendency (advection by ``u + U_j``, ``-beta_j psi_x`` and the
bottom drag; the linear terms commute with ``bar`` and cancel, so ``S_q`` is the
subgrid advection).  The coarse fields are written with ``u``, ``v`` of ``bar(q)``:

    python -m hybridsolver.subgrid CASE [--set a.b=VALUE ...] --out DIR [--coarse 64]
                                   [--every 1000] [--start 0] [--checkpoint-every 1000]

runs the (high-resolution) case to its end and every ``--every`` steps from model time
``--start`` on appends ``q``, ``u``, ``v`` and ``S_q`` of both filters to
``DIR/subgrid.nc`` (dims ``filter, member, time, layer, y, x``, float32).  The file is
complete between appends.  The ensemble is checkpointed (``DIR/checkpoint.npz``,
``Simulation.save_checkpoint``) after every record and every ``--checkpoint-every`` steps, so that a
killed or finished-early run continues where it stopped when started again with the same
arguments (``DIR/meta.json`` keeps them; other arguments are refused).
"""
import argparse
import json
import os
import sys

import netCDF4
import numpy as np
from tqdm import tqdm

from . import cf, fft
from .case import CaseError
from .grid import coarsen
from .output import check_meta, define_records, define_variable
from .overrides import parse_set_options
from .simulation import Simulation
from .steppers import AdamsBashforth3

FILTERS = ("sharp", "gaussian")
FIELDS = ("q", "u", "v", "S_q")


class Coarsener:
    """The operator ``bar`` from the grid of ``fine`` (a ``qg2layer`` Simulation) to
    ``shape = (ny, nx)`` with filter ``kind`` (one of :data:`FILTERS`), and the coarse
    model (``coarse``: the fine case on the coarse grid, without plugins)."""

    def __init__(self, fine, shape, kind):
        if fine.equation.name != "qg2layer":
            raise CaseError(f"equation.name: subgrid forcing is defined for qg2layer, got '{fine.equation.name}'")
        if kind not in FILTERS:
            raise CaseError(f"subgrid filter: expected one of {', '.join(FILTERS)}, got '{kind}'")
        self.shape = tuple(int(n) for n in shape)
        if any(c >= f or c % 2 for c, f in zip(self.shape, fine.grid.shape)):
            raise CaseError(f"--coarse: the coarse grid {list(self.shape)} must be even and coarser than "
                            f"grid.shape {list(fine.grid.shape)}")
        self.fine = fine
        self.coarse = Simulation.from_case(fine.case.data, {"grid.shape": list(self.shape), "plugins": []})
        g = self.coarse.grid
        if kind == "sharp":
            if g.dealias != "exponential":
                raise CaseError(f"grid.dealias: the sharp filter is pyqg's exponential one, got '{g.dealias}'")
            self.filter = g.state_filter()
        else:
            self.filter = np.exp(-g.k2 * (2 * g.dx) ** 2 / 24)
        self.kind = kind

    def __call__(self, spectrum):
        """``bar`` of fine spectra (..., Ny, Nx//2+1) -> coarse spectra (..., ny, nx//2+1)."""
        return coarsen(spectrum, self.shape) * self.filter

    def fine_tendency(self, q_fine):
        """``N_fine(q)``: the fine model's tendency of states ``q_fine`` (M, 2, Ny, Nx//2+1)."""
        out = fft.empty(q_fine.shape, np.complex128)
        self.fine.equation.explicit(q_fine, out)
        return out

    def forcing(self, q_fine, fine_tendency=None):
        """``S_q`` (spectral, (M, 2, ny, nx//2+1), 1/s^2) of fine states ``q_fine``
        (M, 2, Ny, Nx//2+1), and ``bar(q)``; ``fine_tendency``: :meth:`fine_tendency` of
        ``q_fine`` when already at hand (it does not depend on the filter)."""
        if fine_tendency is None:
            fine_tendency = self.fine_tendency(q_fine)
        q_bar = self(q_fine)
        coarse_tendency = fft.empty(q_bar.shape, np.complex128)
        self.coarse.equation.explicit(q_bar, coarse_tendency)
        return self(fine_tendency) - coarse_tendency, q_bar

    def record(self, q_fine, fine_tendency=None):
        """{'q', 'u', 'v', 'S_q'}: the coarse physical fields, each (M, 2, ny, nx)
        (``fine_tendency`` as for :meth:`forcing`)."""
        eq = self.coarse.equation
        s_q, q_bar = self.forcing(q_fine, fine_tendency)
        u, v = eq.velocity(q_bar)
        return {"q": eq.to_fields(q_bar)["q"], "u": u, "v": v, "S_q": eq.to_fields(s_q)["q"]}


# ---- the dataset writer -----------------------------------------------------------------

def _create(path, fine, coarse_grid, meta):
    with netCDF4.Dataset(path, "w") as ds:
        define_records(ds, fine, "hybridsolver qg2layer subgrid forcing dataset", members=len(fine.members))
        ds["member"][:] = np.asarray(fine.members)
        ds.createDimension("filter", len(FILTERS))
        ds.createVariable("filter", str, ("filter",))[:] = np.array(FILTERS, dtype=object)
        ds["filter"].long_name = "coarse-graining filter"
        for axis, values, size in (("layer", np.arange(1, 3), 2), ("y", coarse_grid.y, coarse_grid.ny),
                                   ("x", coarse_grid.x, coarse_grid.nx)):
            ds.createDimension(axis, size)
            var = ds.createVariable(axis, "f8" if axis != "layer" else "i8", (axis,))
            var[:] = values
            var.setncatts(cf.axis_attributes(axis, "SI"))
        for name in FIELDS:
            var = define_variable(ds, fine, name, "f4", ("filter", "member", "time", "layer", "y", "x"))
            var.long_name = f"coarse-grained {var.long_name}" if name != "S_q" else var.long_name
        ds.fine_case = fine.case.to_toml()
        ds.meta = json.dumps(meta)


def _recorded_steps(path):
    with netCDF4.Dataset(path) as ds:
        return [int(s) for s in ds["step"][:]]


def _append(path, sim, coarseners):
    fine_tendency = coarseners[0].fine_tendency(sim.state)  # the same for every filter
    records = [c.record(sim.state, fine_tendency) for c in coarseners]
    with netCDF4.Dataset(path, "a") as ds:
        n = ds.dimensions["time"].size
        for name in FIELDS:
            ds[name][:, :, n] = np.stack([r[name] for r in records]).astype(np.float32)
        ds["time"][n] = sim.time
        ds["step"][n] = sim.step


def generate(case, out, coarse=64, every=1000, start=0.0, overrides=None, checkpoint_every=1000, stop_at=None,
             progress=True):
    """Run ``case`` (with ``overrides``) to its end, recording subgrid data into ``out``;
    resumes from ``out/checkpoint.npz``.  ``stop_at`` ends this call at that step (the run
    continues at the next call).  Returns the path of ``subgrid.nc``."""
    if every < 1:
        raise CaseError(f"--every: expected a positive number of steps, got {every}")
    sim = Simulation.from_case(case, overrides)
    if not isinstance(sim.stepper, AdamsBashforth3) or sim.hooks:
        raise CaseError("time.scheme: subgrid data runs the qg2layer model as pyqg (ab3, no plugins)")
    coarseners = [Coarsener(sim, (coarse, coarse), kind) for kind in FILTERS]
    meta = {"case": sim.case.to_toml(), "coarse": coarse, "every": every, "start": start}
    check_meta(out, meta)
    path, checkpoint = os.path.join(out, "subgrid.nc"), os.path.join(out, "checkpoint.npz")
    if not os.path.exists(path):
        _create(path, sim, coarseners[0].coarse.grid, meta)
    if os.path.exists(checkpoint):
        sim.load_checkpoint(checkpoint)
    recorded = set(_recorded_steps(path))
    end = sim.total_steps if stop_at is None else min(stop_at, sim.total_steps)
    first = int(np.ceil(start / sim.dt - 1e-9))
    with tqdm(total=end - sim.step, unit="step", disable=not progress, dynamic_ncols=True) as bar:
        while True:
            if sim.step >= first and (sim.step - first) % every == 0 and sim.step not in recorded:
                _append(path, sim, coarseners)
                recorded.add(sim.step)
                sim.save_checkpoint(checkpoint)
            if sim.step >= end:
                break
            due = first if sim.step < first else sim.step + every - (sim.step - first) % every
            target = min(due, end, sim.step + checkpoint_every)
            before = sim.step
            sim.advance(target - sim.step)
            bar.update(sim.step - before)
            if not np.isfinite(sim.state).all():
                raise RuntimeError(f"{path}: the fine model blew up by step {sim.step}")
            if sim.step % checkpoint_every == 0:
                sim.save_checkpoint(checkpoint)
    sim.save_checkpoint(checkpoint)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", help="the high-resolution qg2layer case file")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="case override")
    parser.add_argument("--out", required=True, help="dataset folder")
    parser.add_argument("--coarse", type=int, default=64, help="coarse grid points per side (default 64)")
    parser.add_argument("--every", type=int, default=1000, help="steps between records (default 1000)")
    parser.add_argument("--start", type=float, default=0.0, help="model time of the first record (default 0)")
    parser.add_argument("--checkpoint-every", type=int, default=1000, help="steps between checkpoints")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        overrides = parse_set_options(args.set)
        path = generate(args.case, args.out, args.coarse, args.every, args.start, overrides, args.checkpoint_every,
                        progress=not args.quiet)
    except CaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
