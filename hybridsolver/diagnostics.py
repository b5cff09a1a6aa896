"""Spectral sums shared by the equations' diagnostics.

All functions take half-complex spectra ``(M, ny, nx//2+1)`` of unnormalised real
FFTs and return per-member values.
"""
import numpy as np


def spectral_mean_square(power, grid):
    """Domain mean of a squared field from its spectral power ``|F|^2``: (M,).

    Parseval on the half spectrum: ``<f^2> = sum_k weight |F_k|^2 / N^2``.
    """
    return np.einsum("mij,ij->m", power, grid.weight) / grid.size**2


def shell_sum(power, grid):
    """Isotropic shell sums of ``weight |F_k|^2 / N^2``: (M, nshell).

    Shells are those of :meth:`Grid.shells`; modes outside the inscribed circle are
    left out.
    """
    index, k = grid.shells()
    inside = index >= 0
    weighted = power[:, inside] * grid.weight[inside] / grid.size**2
    out = np.zeros((power.shape[0], len(k)))
    for m in range(power.shape[0]):
        out[m] = np.bincount(index[inside], weights=weighted[m], minlength=len(k))
    return out
