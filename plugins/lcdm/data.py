"""Reading the L-CDM dataset written by :mod:`plugins.lcdm.generate`.

A dataset folder holds ``meta.json`` and ``batch_<first>-<last>.nc`` files with
``vorticity`` and ``H`` of dims (trajectory, time, y, x), float32 on the 64^2 grid.
Training pairs are the records of training trajectories before ``train_end`` (t = 40);
test pairs the same records of the test trajectories; the closed-loop truth is the
test trajectories' vorticity from t = 30 on.  Batches not generated yet are simply
absent: :func:`load_pairs` uses what is there and says which trajectories it read.
"""
import os

import numpy as np
import xarray as xr

from hybridsolver.case import CaseError

from .. import recording


def read_meta(folder):
    """The arguments (``meta.json``) of the L-CDM dataset in ``folder``."""
    return recording.read_meta(folder, "plugins.lcdm.generate")


def _datasets(folder, split):
    """The batch datasets of ``split`` ('train' or 'test') in member order."""
    meta = read_meta(folder)
    return meta, recording.load_batches(folder, split, *meta[f"{split}_members"])


def load_pairs(folder, split, limit=None):
    """(omega, H, trajectories): float32 arrays (N, 1, 64, 64) of the pairs of ``split``
    (records before ``train_end``) and the list of trajectories they come from.
    ``limit`` keeps the first ``limit`` pairs in (trajectory, time) order."""
    meta, datasets = _datasets(folder, split)
    omega, closure, trajectories = [], [], []
    for ds in datasets:
        ds = ds.sel(time=ds.time < meta["train_end"] - 1e-9)
        omega.append(ds.vorticity.values.reshape(-1, 1, *ds.vorticity.shape[-2:]))
        closure.append(ds.H.values.reshape(-1, 1, *ds.H.shape[-2:]))
        trajectories += [int(t) for t in ds.trajectory]
    omega, closure = np.concatenate(omega), np.concatenate(closure)
    if limit is not None:
        omega, closure = omega[:limit], closure[:limit]
    return omega, closure, trajectories


def load_truth(folder, trajectory=None):
    """Closed-loop truth: ``(times (T,), vorticity (T, 64, 64) float64)`` of one test
    trajectory (default: the first) from t = 30 on."""
    _, datasets = _datasets(folder, "test")
    ds = xr.concat(datasets, dim="trajectory")
    trajectory = int(ds.trajectory[0]) if trajectory is None else trajectory
    if trajectory not in ds.trajectory:
        raise CaseError(f"{folder}: trajectory {trajectory} is not a generated test trajectory "
                        f"({[int(t) for t in ds.trajectory]})")
    traj = ds.sel(trajectory=trajectory)
    traj = traj.sel(time=traj.time >= 30.0 - 1e-9)
    return traj.time.values, traj.vorticity.values.astype(np.float64)


def write_truth(folder, out, trajectory=None, times=(30.0, 35.0, 40.0, 45.0, 50.0)):
    """Write a test trajectory's closed-loop start and truth into ``out``:
    ``initial_t30.npy`` (64, 64) and ``truth.nc`` (vorticity at ``times``).  Returns both paths."""
    all_times, vorticity = load_truth(folder, trajectory)
    rows = [int(np.argmin(np.abs(all_times - t))) for t in times]
    if not np.allclose(all_times[rows], times):
        raise CaseError(f"{folder}: the truth trajectory has no snapshots at t = {list(times)}")
    os.makedirs(out, exist_ok=True)
    initial = os.path.join(out, "initial_t30.npy")
    np.save(initial, vorticity[rows[0]])
    truth = os.path.join(out, "truth.nc")
    trajectory = trajectory if trajectory is not None else int(_datasets(folder, "test")[1][0].trajectory[0])
    xr.Dataset({"vorticity": (("time", "y", "x"), vorticity[rows], {"units": "1/time"})},
               coords={"time": list(times)},
               attrs={"source": f"test trajectory {trajectory} of {folder} (python -m plugins.lcdm.generate)"}
               ).to_netcdf(truth)
    return initial, truth
