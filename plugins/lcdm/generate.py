"""Training data for the L-CDM closure: (vorticity, H) pairs from ensemble DNS.

    python -m plugins.lcdm.generate [--out data/lcdm] [--trajectories 100] [--test 10]
                                    [--batch 10] [--case cases/kolmogorov_unit_torus.toml]

Each trajectory is one ensemble member of the DNS case (256^2 stochastic Kolmogorov
flow on the unit torus, Crank-Nicolson/forward Euler, dt = 1e-3, GRF initial
vorticity), so trajectory m is the same however the trajectories are batched.  From
t = 20 on, every 100 steps, the vorticity omega and the unknown part of its tendency

    H = -u . grad(omega) + beta dW/dt     (dW: the stochastic increment of that step)

are spectrally truncated to 64^2 (:func:`hybridsolver.grid.coarsen`) and recorded, so
that on the recorded pairs ``(omega(t + dt) - omega(t)) / dt = nu lap(omega_mid) + f + H``
(exactly with the Crank-Nicolson mid-point; see tests/test_lcdm.py).  Training
trajectories run to t = 40 (200 pairs each), test trajectories to t = 50 (the pairs
before t = 40 are the offline test set; the snapshots from t = 30 on are the
closed-loop truth).  Trajectories run ``--batch`` at a time as one ensemble; each batch
is written to ``batch_<first>-<last>.nc`` when it ends and checkpointed every
``--checkpoint-every`` steps, so an interrupted run continues where it stopped.
``meta.json`` records the arguments; a rerun with different ones is refused.
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

DNS_CASE = "cases/kolmogorov_unit_torus.toml"
RECORD_START = 20.0
RECORD_EVERY = 100  # steps
TRAIN_END, TEST_END = 40.0, 50.0
COARSE = (64, 64)


def closure_term(sim):
    """H = -F(u . grad omega) + beta dW/dt at the current step: spectral (M, ny, nx//2+1).

    ``beta dW`` is the increment the solver adds in the step from ``sim.step``.
    """
    eq = sim.equation
    out = fft.empty(sim.state.shape, np.complex128)
    eq.explicit(sim.state, out)
    out -= eq.forcing_hat
    out += eq.noise_increment(sim.step, sim.dt) / sim.dt
    return out


def record(sim, shape=COARSE):
    """(omega, H) of every member at the current step on the coarse ``shape``:
    two float64 arrays (M, ny, nx)."""
    coarse = fft.transforms(tuple(shape))
    omega = coarse.to_physical(coarsen(sim.state, shape))
    closure = coarse.to_physical(coarsen(closure_term(sim), shape))
    return omega, closure


def batches(trajectories, test, batch):
    """[(first member, count, end time)] in the order they run: the first training
    batch, the test batches, the other training batches (so that a partial dataset
    can already be trained and evaluated on)."""
    train = trajectories - test
    train_batches = [(lo, min(batch, train - lo), TRAIN_END) for lo in range(0, train, batch)]
    test_batches = [(lo, min(batch, trajectories - lo), TEST_END) for lo in range(train, trajectories, batch)]
    return train_batches[:1] + test_batches + train_batches[1:]


def batch_run(case, out, first, count, t_end, checkpoint_every):
    """The :class:`RecordedBatch` of one batch: (omega, H) every RECORD_EVERY steps from
    RECORD_START (the first multiple of RECORD_EVERY there) to ``t_end``."""
    dt = load_case(case).data["time"]["dt"]
    start = -(-int(round(RECORD_START / dt)) // RECORD_EVERY) * RECORD_EVERY
    return RecordedBatch(case, batch_path(out, first, count), first, count, start,
                         RECORD_EVERY, int(round(t_end / dt)), _records, checkpoint_every)


def _records(sim):
    omega, closure = record(sim)
    return {"vorticity": omega, "H": closure}


def write_batch(attrs, dt, members):
    """The ``write`` of :meth:`RecordedBatch.run`: the batch's netCDF file."""
    def write(path, steps, records):
        # records from t = 40 on (test trajectories) are truth only, not training pairs
        dims = ("trajectory", "time", "y", "x")
        ny, nx = COARSE
        ds = xr.Dataset(
            {"vorticity": (dims, records["vorticity"], {"units": "1/time"}),
             "H": (dims, records["H"], {"long_name": "-u.grad(omega) + beta dW/dt", "units": "1/time^2"})},
            coords={"trajectory": members, "time": steps * dt, "y": np.arange(ny) / ny, "x": np.arange(nx) / nx},
            attrs=attrs)
        ds.to_netcdf(path)
    return write


def generate(out, trajectories, test, batch, case=DNS_CASE, checkpoint_every=2000, progress=True):
    """Generate (or finish generating) the dataset in ``out``; returns the batch paths."""
    if not 0 < test < trajectories:
        raise CaseError(f"--test: expected 0 < test < trajectories ({trajectories}), got {test}")
    with open(case, "rb") as f:
        case_text = f.read().decode()
    meta = {"case": case_text, "trajectories": trajectories, "test": test, "batch": batch,
            "train_members": [0, trajectories - test - 1], "test_members": [trajectories - test, trajectories - 1],
            "record_start": RECORD_START, "record_every_steps": RECORD_EVERY, "train_end": TRAIN_END,
            "test_end": TEST_END, "coarse_shape": list(COARSE), "coarsening": "spectral truncation"}
    check_meta(out, meta)
    runs = [batch_run(case, out, first, count, t_end, checkpoint_every)
            for first, count, t_end in batches(trajectories, test, batch)]
    attrs = {"source": "python -m plugins.lcdm.generate", "dns_case": case_text, "dns_case_path": case,
             "coarsening": "spectral truncation to 64x64 (hybridsolver.grid.coarsen)"}
    run_batches(runs, lambda run: write_batch(attrs, run.sim.dt, run.sim.members), progress)
    return [r.path for r in runs]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    batch_arguments(parser, "data/lcdm", 100, 10, 10, DNS_CASE)
    args = parser.parse_args(argv)
    return print_paths(lambda: generate(args.out, args.trajectories, args.test, args.batch, args.case,
                                        args.checkpoint_every, progress=not args.quiet))


if __name__ == "__main__":
    sys.exit(main())
