"""Reading the SNS data (``python -m plugins.sns.generate``) and its statistics: the
vorticity of a split, its normalisation scale, and the time-mean isotropic kinetic-energy
spectrum of every trajectory, which ``--compare`` sets beside another dataset's (is a
256^2 DNS's 64^2 band the 512^2 one's?).

    python -m plugins.sns.data data/sns [--compare data/sns512]

Spectra: E(k) = sum over the shell of |k| (unit shells of the 2 pi box) of
|omega_hat|^2 / (2 |k|^2) (per unit area, the half-spectrum weights of
:func:`hybridsolver.diagnostics.shell_sum`), averaged over every snapshot; summed over
the shells it is the mean kinetic energy of the modes inside the inscribed circle.
"""
import argparse
import sys

import numpy as np

from hybridsolver import fft
from hybridsolver.case import CaseError
from hybridsolver.diagnostics import shell_sum
from hybridsolver.grid import Grid

from .. import recording


def load_vorticity(folder, split):
    """The vorticity of ``split`` ('train' or 'test'): (trajectories, T, 64, 64) float32,
    with the times (T,) and the box's length (Ly, Lx)."""
    meta = recording.read_meta(folder, "plugins.sns.generate")
    first_test = meta["trajectories"] - meta["test"]
    lo, hi = (0, first_test - 1) if split == "train" else (first_test, meta["trajectories"] - 1)
    batches = recording.load_batches(folder, split, lo, hi)
    ds = batches[-1]
    length = (float(ds.y[1]) * ds.sizes["y"], float(ds.x[1]) * ds.sizes["x"])
    return np.concatenate([b["vorticity"].values for b in batches]), ds.time.values, length


def energy_spectrum(omega, length):
    """Time- and member-mean KE spectrum of vorticity ``omega`` (..., ny, nx) on a box of
    ``length`` (Ly, Lx): (k (nshell,), E (nshell,))."""
    shape = omega.shape[-2:]
    grid = Grid(shape, length)
    flat = omega.reshape((-1,) + shape).astype(np.float64)
    w_hat = fft.transforms(shape).to_spectral(flat)
    spectrum = 0.5 * shell_sum(np.abs(w_hat) ** 2 * grid.inv_k2, grid).mean(axis=0)
    return grid.shells()[1], spectrum


def log_spectral_rmse(a, b):
    """RMS of log10(a / b) over the shells k >= 1 where both are positive."""
    a, b = np.asarray(a)[1:], np.asarray(b)[1:]
    keep = (a > 0) & (b > 0)
    return float(np.sqrt(np.mean(np.log10(a[keep] / b[keep]) ** 2)))


def rollout_starts(test_trajectories, snapshots, count, horizon):
    """(trajectory, snapshot) of ``count`` initial conditions spread over the test
    trajectories, each with ``horizon`` true snapshots after it: the same number of
    starts per trajectory (the first ones get one more when ``count`` does not divide),
    evenly spaced in [0, snapshots - 1 - horizon].  CaseError if the trajectories are
    shorter than ``horizon + 1`` snapshots."""
    last = snapshots - 1 - horizon
    if last < 0:
        raise CaseError(f"a rollout of {horizon} steps needs test trajectories of at least {horizon + 1} "
                        f"snapshots, the data has {snapshots}")
    starts = []
    for trajectory in range(test_trajectories):
        n = count // test_trajectories + (trajectory < count % test_trajectories)
        starts += [(trajectory, int(round(j * last / max(n - 1, 1)))) for j in range(n)]
    return starts


def summary(folder):
    """{'std', 'spectrum' (k, E), 'trajectories'} of the vorticity of every trajectory of
    ``folder`` (training and test)."""
    parts = [load_vorticity(folder, split) for split in ("train", "test")]
    omega = np.concatenate([p[0] for p in parts])
    return {"std": float(omega.std()), "spectrum": energy_spectrum(omega, parts[0][2]), "trajectories": len(omega)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="an SNS dataset folder")
    parser.add_argument("--compare", help="another one (e.g. the 512^2 DNS's)")
    args = parser.parse_args(argv)
    try:
        mine = summary(args.data)
        other = summary(args.compare) if args.compare else None
    except CaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.data}: vorticity std {mine['std']:.4f} over {mine['trajectories']} trajectories "
          "(the paper's normalisation: 4.44)")
    if other:
        print(f"{args.compare}: vorticity std {other['std']:.4f} over {other['trajectories']} trajectories")
        k, a = mine["spectrum"]
        b = other["spectrum"][1]
        print("  k   E (data)    E (compare)  ratio")
        for j in range(1, len(k)):
            print(f"{k[j]:4.0f}  {a[j]:.4e}  {b[j]:.4e}  {a[j] / b[j]:.3f}")
        print(f"log-spectral RMSE: {log_spectral_rmse(a, b):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
