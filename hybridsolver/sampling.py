"""Fourier interpolation of spectral fields at the points of a rectangular window.

A doubly periodic field held as its half spectrum ``f_hat`` (the unnormalised rfft,
``(ny, nx//2+1)``) is the trigonometric polynomial

    f(x, y) = (1/N) sum_q sum_p w_p Re[f_hat[q, p] exp(i (kx_p (x - x_0) + ky_q (y - y_0)))],

``w_p`` 1 for the mean column (and the Nyquist column of an even nx), 2 otherwise, ``N``
the number of grid points, ``(y_0, x_0)`` the grid's origin.  It equals the field on the
grid points and is its band-limited value between them: a window whose points are not
grid points (the latent-SDE paper's cylinder data on spacing 0.0125, our grid on 1/128)
is sampled exactly, with two small matrix products per field.
"""
import numpy as np


class Window:
    """The points ``y_i = start[0] + i spacing[0]``, ``x_j = start[1] + j spacing[1]``
    (``shape = (ny_w, nx_w)``) of a :class:`hybridsolver.grid.Grid`'s box."""

    def __init__(self, grid, start, spacing, shape):
        self.shape = tuple(int(n) for n in shape)
        self.y = float(start[0]) + np.arange(self.shape[0]) * float(spacing[0])
        self.x = float(start[1]) + np.arange(self.shape[1]) * float(spacing[1])
        weight = np.full(grid.nx // 2 + 1, 2.0)
        weight[0] = 1.0
        if grid.nx % 2 == 0:
            weight[-1] = 1.0
        # (nx//2+1, nx_w) and (ny_w, ny): the x and y sums of the interpolant
        self._along_x = weight[:, None] * np.exp(1j * np.outer(grid.kx, self.x - grid.origin[1])) / grid.size
        self._along_y = np.exp(1j * np.outer(self.y - grid.origin[0], grid.ky))

    def coordinates(self):
        """{axis name: coordinate values} in field axis order (``y``, ``x``)."""
        return {"y": self.y, "x": self.x}

    def sample(self, f_hat):
        """Values (..., ny_w, nx_w) at the window's points of half spectra ``f_hat``
        (..., ny, nx//2+1) (unnormalised rfft, as the host's transforms)."""
        return (self._along_y @ (f_hat @ self._along_x)).real
