"""Resumable recording of trajectory batches, for the families' ``generate`` commands.

A :class:`RecordedBatch` steps ``count`` ensemble members of a case (members ``first`` ..
``first + count - 1``, so a trajectory does not depend on the batching) to step ``end``,
records ``record(sim)`` ({name: float32 array (M, ...)}) at steps ``start``, ``start +
every``, ... up to ``end``, saves a checkpoint (state, step and the records so far) every
``checkpoint_every`` steps next to its file, and at the end hands the records to
``write(path, steps, records)`` with records stacked as {name: (M, T, ...)}; the file is
written atomically and the checkpoint removed.  A batch whose checkpoint exists continues
from it, so an interrupted generation resumes bit-identically.  :func:`run_batches` runs
a generator's batches under one progress bar; :func:`batch_arguments` adds the options
every generator has and :func:`print_paths` ends its command.  On the reading side,
:func:`read_meta` and :func:`load_batches` give a dataset folder's arguments and the batch
files of a range of trajectories, :func:`load_split` a split's field, and
:func:`write_starts` the rollouts' initial conditions from a test split.  Used by ``lcdm``,
``sns`` and ``hine``.
"""
import glob
import json
import os
import sys

import numpy as np
import xarray as xr
from tqdm import tqdm

from hybridsolver import Simulation
from hybridsolver.case import CaseError

from .flow_statistics import rollout_starts


def batch_path(out, first, count):
    """The file of the batch of trajectories ``first`` .. ``first + count - 1`` in ``out``."""
    return os.path.join(out, f"batch_{first:03d}-{first + count - 1:03d}.nc")


class RecordedBatch:
    """One batch of trajectories: its DNS ensemble, records and checkpoint."""

    def __init__(self, case, path, first, count, start, every, end, record, checkpoint_every):
        self.path = path
        self.checkpoint = os.path.splitext(path)[0] + ".ckpt.npz"
        self.sim = Simulation.from_case(case, {"ensemble.members": count, "ensemble.first_member": first})
        self.start, self.every, self.end = int(start), int(every), int(end)
        self.record, self.checkpoint_every = record, checkpoint_every
        self.steps, self.records = [], {}
        if os.path.exists(self.checkpoint):
            with np.load(self.checkpoint) as ck:
                self.sim.state[...] = ck["state"]
                self.sim.step = int(ck["step"])
                self.steps = list(ck["steps"])
                self.records = {key[len("record_"):]: list(ck[key]) for key in ck.files if key.startswith("record_")}

    @property
    def done(self):
        return os.path.exists(self.path)

    def remaining(self):
        """Steps left to take (0 once the file is written)."""
        return 0 if self.done else self.end - self.sim.step

    def _save_checkpoint(self):
        tmp = self.checkpoint + ".tmp.npz"
        np.savez(tmp, state=self.sim.state, step=self.sim.step, steps=np.array(self.steps, dtype=np.int64),
                 **{f"record_{name}": np.array(values) for name, values in self.records.items()})
        os.replace(tmp, self.checkpoint)

    def _record(self):
        self.steps.append(self.sim.step)
        for name, value in self.record(self.sim).items():
            self.records.setdefault(name, []).append(np.asarray(value, dtype=np.float32))

    def run(self, bar, write):
        """Step to the end, recording and checkpointing (``bar``: a tqdm counting steps),
        then ``write(tmp_path, steps (T,), {name: (M, T, ...)})`` and move it into place."""
        sim = self.sim
        last_checkpoint = sim.step
        while True:
            if sim.step >= self.start and (sim.step - self.start) % self.every == 0:
                self._record()
            if sim.step == self.end:
                break
            if sim.step < self.start:  # the spin-up, in chunks that can be checkpointed
                target = min(self.start, sim.step + self.checkpoint_every)
            else:
                target = sim.step + self.every - (sim.step - self.start) % self.every
            before = sim.step
            sim.advance(min(target, self.end) - sim.step)
            bar.update(sim.step - before)
            if sim.step - last_checkpoint >= self.checkpoint_every and sim.step < self.end:
                self._save_checkpoint()
                last_checkpoint = sim.step
        if not np.isfinite(sim.state).all():
            raise RuntimeError(f"{self.path}: the DNS blew up (non-finite state by step {sim.step})")
        tmp = self.path + ".tmp"
        write(tmp, np.array(self.steps, dtype=np.int64), {name: np.stack(values, axis=1)
                                                           for name, values in self.records.items()})
        os.replace(tmp, self.path)
        if os.path.exists(self.checkpoint):
            os.remove(self.checkpoint)


def run_batches(batches, writer, progress=True):
    """Run every unfinished batch of ``batches`` in order under one progress bar of steps;
    ``writer(batch)`` gives the ``write`` of :meth:`RecordedBatch.run` for a batch."""
    with tqdm(total=sum(b.remaining() for b in batches), unit="step", disable=not progress,
              dynamic_ncols=True) as bar:
        for batch in batches:
            if not batch.done:
                bar.set_description(os.path.basename(batch.path))
                batch.run(bar, writer(batch))


def batch_arguments(parser, out, trajectories, test, batch, case):
    """Add a generator's common options to ``parser`` (argparse), with these defaults:
    --out, --trajectories, --test (the last ones), --batch, --case, --checkpoint-every
    (steps) and --quiet."""
    parser.add_argument("--out", default=out, help=f"dataset folder (default {out})")
    parser.add_argument("--trajectories", type=int, default=trajectories,
                        help=f"trajectories in all (default {trajectories})")
    parser.add_argument("--test", type=int, default=test, help=f"of which test trajectories (default {test}, the last)")
    parser.add_argument("--batch", type=int, default=batch, help=f"trajectories per DNS ensemble (default {batch})")
    parser.add_argument("--case", default=case, help=f"DNS case file (default {case})")
    parser.add_argument("--checkpoint-every", type=int, default=2000, help="steps between checkpoints")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def print_paths(make):
    """A generator command's ending: print the paths ``make()`` returns and give exit code
    0, or print its CaseError as ``error: ...`` on stderr and give 2."""
    try:
        paths = make()
    except CaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(paths))
    return 0


def read_meta(folder, generator):
    """The arguments (``meta.json``) of the dataset in ``folder``; CaseError naming the
    ``generator`` module that makes one where there is none."""
    path = os.path.join(folder, "meta.json")
    if not os.path.exists(path):
        raise CaseError(f"{path}: no dataset here (generate one with python -m {generator} --out {folder})")
    with open(path) as f:
        return json.load(f)


def load_batches(folder, split, lo, hi):
    """The finished batch files (loaded xarray Datasets, in trajectory order) of ``folder``
    whose trajectories ``lo`` .. ``hi`` make up ``split``; CaseError where there is none."""
    out = []
    for path in sorted(glob.glob(os.path.join(folder, "batch_*.nc"))):
        with xr.open_dataset(path) as ds:
            if lo <= int(ds.trajectory[0]) <= hi:
                out.append(ds.load())
    if not out:
        raise CaseError(f"{folder}: no {split} trajectories generated yet (members {lo}..{hi})")
    return out


def load_split(folder, generator, split, field):
    """``field`` of ``split`` ('train': the first ``trajectories - test`` trajectories, or
    'test') of the dataset in ``folder`` made by the ``generator`` module: (trajectories, T,
    ny, nx) as stored, with the times (T,) and the box's length (Ly, Lx)."""
    meta = read_meta(folder, generator)
    first_test = meta["trajectories"] - meta["test"]
    lo, hi = (0, first_test - 1) if split == "train" else (first_test, meta["trajectories"] - 1)
    batches = load_batches(folder, split, lo, hi)
    ds = batches[-1]
    length = (float(ds.y[1]) * ds.sizes["y"], float(ds.x[1]) * ds.sizes["x"])
    return np.concatenate([b[field].values for b in batches]), ds.time.values, length


def write_starts(omega, data, out, count, horizon):
    """Write ``out/starts.npy`` ((count, ny, nx) float64: the test vorticity ``omega``
    (trajectories, T, ny, nx) of folder ``data`` at the starts of
    :func:`plugins.flow_statistics.rollout_starts`) and ``out/starts.json`` (each row's
    test trajectory and snapshot); returns the two paths."""
    starts = rollout_starts(omega.shape[0], omega.shape[1], count, horizon)
    rows = np.stack([omega[trajectory, snapshot] for trajectory, snapshot in starts]).astype(np.float64)
    np.save(os.path.join(out, "starts.npy"), rows)
    with open(os.path.join(out, "starts.json"), "w") as f:
        json.dump({"data": data, "horizon": horizon,
                   "starts": [{"test_trajectory": t, "snapshot": s} for t, s in starts]}, f, indent=1)
    return [os.path.join(out, "starts.npy"), os.path.join(out, "starts.json")]
