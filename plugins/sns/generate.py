"""Training and test data of the SNS family: Kolmogorov flow at Re 10^4, spectrally
truncated to 64^2.

    python -m plugins.sns.generate [--out data/sns] [--dns 256] [--trajectories 8] [--test 2]
                                   [--snapshots 5000] [--batch 4] [--case cases/kolmogorov_2pi.toml]

The DNS is ``--case`` (the 2 pi box, forcing (sin 4y, 0), drag 0.1, ``cn_rk4`` at dt =
1e-3, 2/3 dealiasing) with viscosity 1e-4 (the paper's code; its text says 1e-3) on a
``--dns``² grid, one ensemble member per trajectory (its own random initial velocity,
so trajectory m is the same however the trajectories are batched).  After the paper's
spin-up of 10,000 steps, every ``EVERY`` = 2 steps (Delta t = 0.002), the vorticity is
truncated to 64^2 (:func:`hybridsolver.grid.coarsen`: the coarse field keeps every
resolved Fourier coefficient of the fine one) and recorded, ``--snapshots`` of them per
trajectory.  The paper's DNS is 512^2 with 440,000 pairs; ``--dns 256`` is the CPU
default, and ``python -m plugins.sns.data --compare`` sets the 64^2 spectra of the two
side by side.  The first
``trajectories - test`` trajectories are for training, the last ``test`` for testing.

Batches of ``--batch`` trajectories are written to ``batch_<first>-<last>.nc``
(``vorticity`` (trajectory, time, y, x), float32, unnormalised) when they end and
checkpointed every ``--checkpoint-every`` steps (:mod:`plugins.recording`), so an
interrupted run continues where it stopped; ``meta.json`` records the arguments and a
rerun with other ones is refused (exit 2).
"""
import argparse
import sys

import numpy as np
import xarray as xr

from hybridsolver import fft
from hybridsolver.case import CaseError, load_case
from hybridsolver.grid import coarsen
from hybridsolver.output import check_meta

from ..recording import RecordedBatch, batch_arguments, batch_path, print_paths, run_batches

DNS_CASE = "cases/kolmogorov_2pi.toml"
VISCOSITY = 1e-4
SPIN_UP = 10_000  # steps
EVERY = 2  # steps between snapshots
COARSE = (64, 64)


def dns_overrides(dns):
    """The case overrides of the Re 10^4 DNS on a ``dns``² grid."""
    return {"equation.viscosity": VISCOSITY, "grid.shape": [dns, dns]}


def truncated_vorticity(sim, shape=COARSE):
    """{'vorticity': (M, ny, nx)}: the members' vorticity truncated to ``shape``."""
    return {"vorticity": fft.transforms(tuple(shape)).to_physical(coarsen(sim.state, shape))}


def write_batch(attrs, dt, members, length):
    """The ``write`` of :meth:`RecordedBatch.run`: a batch's netCDF file (points at
    x_j = j length / 64)."""
    def write(path, steps, records):
        ny, nx = records["vorticity"].shape[-2:]
        ds = xr.Dataset(
            {"vorticity": (("trajectory", "time", "y", "x"), records["vorticity"], {"units": "1/time"})},
            coords={"trajectory": members, "time": steps * dt, "step": ("time", steps),
                    "y": np.arange(ny) * length[0] / ny, "x": np.arange(nx) * length[1] / nx},
            attrs=attrs)
        ds.to_netcdf(path)
    return write


def generate(out, dns=256, trajectories=8, test=2, snapshots=5000, batch=4, case=DNS_CASE,
             checkpoint_every=2000, progress=True, spin_up=SPIN_UP, coarse=COARSE):
    """Generate (or finish generating) the dataset in ``out``; returns the batch paths
    (training batches first)."""
    if not 0 < test < trajectories:
        raise CaseError(f"--test: expected 0 < test < trajectories ({trajectories}), got {test}")
    if snapshots < 2 or batch < 1:
        raise CaseError(f"--snapshots and --batch: expected at least 2 and 1, got {snapshots} and {batch}")
    overrides = dns_overrides(dns)
    resolved = load_case(case, overrides)
    with open(case, "rb") as f:
        case_text = f.read().decode()
    meta = {"case": case_text, "overrides": overrides, "trajectories": trajectories, "test": test,
            "snapshots": snapshots, "batch": batch, "spin_up_steps": spin_up, "every_steps": EVERY,
            "coarse_shape": list(coarse), "coarsening": "spectral truncation"}
    check_meta(out, meta)
    return record_truncated(resolved, out, "python -m plugins.sns.generate", trajectories, test, batch, spin_up,
                            EVERY, snapshots, coarse, checkpoint_every, progress)


def record_truncated(resolved, out, source, trajectories, test, batch, start, every, snapshots, coarse,
                     checkpoint_every, progress):
    """Run the batches of a generator whose records are the vorticity truncated to
    ``coarse``: ``trajectories`` members of the ``resolved`` case in batches of
    ``batch``, the last ``test`` of them in batches of their own, ``snapshots`` records
    every ``every`` steps from step ``start``; files attributed to the command ``source``.
    Returns the batch paths (training batches first)."""
    end = start + every * (snapshots - 1)
    runs = []
    for lo, hi in ((0, trajectories - test), (trajectories - test, trajectories)):
        for first in range(lo, hi, batch):
            count = min(batch, hi - first)
            runs.append(RecordedBatch(resolved.data, batch_path(out, first, count), first, count, start, every, end,
                                      lambda sim: truncated_vorticity(sim, coarse), checkpoint_every))
    attrs = {"source": source, "dns_case": resolved.to_toml(),
             "train_trajectories": f"0..{trajectories - test - 1}",
             "test_trajectories": f"{trajectories - test}..{trajectories - 1}",
             "coarsening": f"spectral truncation to {coarse[0]}x{coarse[1]} (hybridsolver.grid.coarsen)"}
    length = resolved.data["grid"]["length"]
    run_batches(runs, lambda run: write_batch(attrs, run.sim.dt, run.sim.members, length), progress)
    return [r.path for r in runs]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    batch_arguments(parser, "data/sns", 8, 2, 4, DNS_CASE)
    parser.add_argument("--dns", type=int, default=256, help="DNS points per side (default 256; the paper's 512)")
    parser.add_argument("--snapshots", type=int, default=5000, help="snapshots per trajectory (default 5000)")
    args = parser.parse_args(argv)
    return print_paths(lambda: generate(args.out, args.dns, args.trajectories, args.test, args.snapshots,
                                        args.batch, args.case, args.checkpoint_every, progress=not args.quiet))


if __name__ == "__main__":
    sys.exit(main())
