"""Statistics of 2D vorticity snapshots that the families' evaluations share: kinetic
energy, isotropic KE spectra and their log-spectral distance, zonal means, and the
spread of rollout starts over test trajectories.

Spectra: E(k) = sum over the shell of |k| (unit shells of the box) of
|omega_hat|^2 / (2 |k|^2) (per unit area, the half-spectrum weights of
:func:`hybridsolver.diagnostics.shell_sum`); summed over the shells it is the mean
kinetic energy of the modes inside the inscribed circle.  numpy, float64.
"""
import numpy as np

from hybridsolver import fft
from hybridsolver.case import CaseError
from hybridsolver.diagnostics import shell_sum, spectral_mean_square
from hybridsolver.grid import Grid


def _power(omega):
    """(|omega_hat|^2 (N, ny, nx//2+1), the grid shape) of ``omega`` (..., ny, nx)."""
    shape = omega.shape[-2:]
    flat = np.asarray(omega).reshape((-1,) + shape).astype(np.float64)
    return np.abs(fft.transforms(shape).to_spectral(flat)) ** 2, shape


def kinetic_energy(omega, length):
    """Mean kinetic energy (1/2 <|u|^2>, the host's ``energy`` diagnostic) of vorticity
    ``omega`` (..., ny, nx) on a box of ``length`` (Ly, Lx): (...)."""
    power, shape = _power(omega)
    grid = Grid(shape, length)
    return 0.5 * spectral_mean_square(power * grid.inv_k2, grid).reshape(np.shape(omega)[:-2])


def energy_spectrum(omega, length):
    """Time- and member-mean KE spectrum of vorticity ``omega`` (..., ny, nx) on a box of
    ``length``: (k (nshell,), E (nshell,))."""
    power, shape = _power(omega)
    grid = Grid(shape, length)
    return grid.shells()[1], 0.5 * shell_sum(power * grid.inv_k2, grid).mean(axis=0)


def log_spectral_rmse(a, b):
    """RMS of log10(a / b) over the shells k >= 1 where both are positive."""
    a, b = np.asarray(a)[1:], np.asarray(b)[1:]
    keep = (a > 0) & (b > 0)
    return float(np.sqrt(np.mean(np.log10(a[keep] / b[keep]) ** 2)))


def zonal_mean(omega):
    """The zonal (x) mean of ``omega`` (..., ny, nx): (..., ny)."""
    return np.asarray(omega, dtype=np.float64).mean(axis=-1)


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
