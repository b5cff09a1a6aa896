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
import os
import sys

import numpy as np
import xarray as xr
from tqdm import tqdm

from hybridsolver import Simulation, fft
from hybridsolver.case import CaseError
from hybridsolver.grid import coarsen
from hybridsolver.output import check_meta

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


def batch_name(first, count):
    return f"batch_{first:03d}-{first + count - 1:03d}"


class BatchRun:
    """One batch of trajectories: the DNS ensemble, its records and its checkpoint."""

    def __init__(self, case, out, first, count, t_end, checkpoint_every):
        self.path = os.path.join(out, batch_name(first, count) + ".nc")
        self.checkpoint = os.path.join(out, batch_name(first, count) + ".ckpt.npz")
        self.sim = Simulation.from_case(case, {"ensemble.members": count, "ensemble.first_member": first})
        self.dt = self.sim.dt
        self.start = int(round(RECORD_START / self.dt))
        self.end = int(round(t_end / self.dt))
        self.checkpoint_every = checkpoint_every
        self.steps, self.omega, self.closure = [], [], []
        if os.path.exists(self.checkpoint):
            with np.load(self.checkpoint) as ck:
                self.sim.state[...] = ck["state"]
                self.sim.step = int(ck["step"])
                self.steps, self.omega, self.closure = list(ck["steps"]), list(ck["omega"]), list(ck["closure"])

    @property
    def done(self):
        return os.path.exists(self.path)

    def remaining(self):
        return 0 if self.done else self.end - self.sim.step

    def _save_checkpoint(self):
        tmp = self.checkpoint + ".tmp.npz"
        np.savez(tmp, state=self.sim.state, step=self.sim.step, steps=np.array(self.steps, dtype=np.int64),
                 omega=np.array(self.omega, dtype=np.float32).reshape((-1,) + self.sim.state.shape[:1] + COARSE),
                 closure=np.array(self.closure, dtype=np.float32).reshape((-1,) + self.sim.state.shape[:1] + COARSE))
        os.replace(tmp, self.checkpoint)

    def run(self, bar, attrs):
        """Step to the end, recording and checkpointing; then write the batch file."""
        sim = self.sim
        last_checkpoint = sim.step
        while sim.step <= self.end:
            if sim.step >= self.start and sim.step % RECORD_EVERY == 0:
                omega, closure = record(sim)
                self.steps.append(sim.step)
                self.omega.append(omega.astype(np.float32))
                self.closure.append(closure.astype(np.float32))
            if sim.step == self.end:
                break
            target = min((sim.step // RECORD_EVERY + 1) * RECORD_EVERY, self.end)
            before = sim.step
            sim.advance(target - sim.step)
            bar.update(sim.step - before)
            if sim.step - last_checkpoint >= self.checkpoint_every and sim.step < self.end:
                self._save_checkpoint()
                last_checkpoint = sim.step
        if not np.isfinite(sim.state).all():
            raise RuntimeError(f"{self.path}: the DNS blew up (non-finite state by step {sim.step})")
        self._write(attrs)
        if os.path.exists(self.checkpoint):
            os.remove(self.checkpoint)

    def _write(self, attrs):
        # records from t = 40 on (test trajectories) are truth only, not training pairs
        times = np.array(self.steps) * self.dt
        dims = ("trajectory", "time", "y", "x")
        ny, nx = COARSE
        ds = xr.Dataset(
            {"vorticity": (dims, np.stack(self.omega, axis=1), {"units": "1/time"}),
             "H": (dims, np.stack(self.closure, axis=1),
                   {"long_name": "-u.grad(omega) + beta dW/dt", "units": "1/time^2"})},
            coords={"trajectory": self.sim.members, "time": times,
                    "y": np.arange(ny) / ny, "x": np.arange(nx) / nx},
            attrs=attrs)
        tmp = self.path + ".tmp"
        ds.to_netcdf(tmp)
        os.replace(tmp, self.path)


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
    runs = [BatchRun(case, out, first, count, t_end, checkpoint_every)
            for first, count, t_end in batches(trajectories, test, batch)]
    attrs = {"source": "python -m plugins.lcdm.generate", "dns_case": case_text, "dns_case_path": case,
             "coarsening": "spectral truncation to 64x64 (hybridsolver.grid.coarsen)"}
    with tqdm(total=sum(r.remaining() for r in runs), unit="step", disable=not progress,
              dynamic_ncols=True) as bar:
        for run in runs:
            if run.done:
                continue
            bar.set_description(os.path.basename(run.path))
            run.run(bar, attrs)
    return [r.path for r in runs]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/lcdm", help="dataset folder (default data/lcdm)")
    parser.add_argument("--trajectories", type=int, default=100, help="trajectories in all (default 100)")
    parser.add_argument("--test", type=int, default=10, help="of which test trajectories (default 10, the last)")
    parser.add_argument("--batch", type=int, default=10, help="trajectories per DNS ensemble (default 10)")
    parser.add_argument("--case", default=DNS_CASE, help=f"DNS case file (default {DNS_CASE})")
    parser.add_argument("--checkpoint-every", type=int, default=2000, help="steps between checkpoints")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        paths = generate(args.out, args.trajectories, args.test, args.batch, args.case, args.checkpoint_every,
                         progress=not args.quiet)
    except CaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
