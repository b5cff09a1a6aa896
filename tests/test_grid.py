"""Grid wavenumbers, dealiasing masks and filters."""
import math

import numpy as np
import pytest

from hybridsolver.grid import Grid


def jax_cfd_brick_wall(n, m):
    """jax-cfd's brick_wall_filter_2d for a (n, m) field stored (x, y), written out."""
    filt = np.zeros((n, m // 2 + 1))
    filt[: int(2 / 3 * n) // 2, : int(2 / 3 * (m // 2 + 1))] = 1
    filt[-int(2 / 3 * n) // 2:, : int(2 / 3 * (m // 2 + 1))] = 1
    return filt


@pytest.mark.parametrize("ny,nx", [(128, 128), (64, 64), (96, 96), (48, 64), (64, 48)])
def test_two_thirds_mask_is_jax_cfd_operator_on_real_fields(ny, nx):
    """Our mask on (y, x) fields acts like jax-cfd's on the same field stored (x, y)."""
    grid = Grid((ny, nx), (2 * math.pi, 2 * math.pi), "2/3")
    field = np.random.default_rng(0).standard_normal((ny, nx))
    ours = np.fft.irfft2(np.fft.rfft2(field) * grid.nonlinear_mask(), s=(ny, nx))
    theirs = np.fft.irfft2(np.fft.rfft2(field.T) * jax_cfd_brick_wall(nx, ny), s=(nx, ny)).T
    assert np.abs(ours - theirs).max() < 1e-13


def test_two_thirds_mask_keeps_alias_free_band_and_is_point_symmetric():
    grid = Grid((128, 128), (2 * math.pi, 2 * math.pi), "2/3")
    mask = grid.nonlinear_mask()
    q = np.rint(np.fft.fftfreq(128, 1 / 128)).astype(int)
    kept = [(p, qq) for i, qq in enumerate(q) for p in range(65) if mask[i, p] == 1]
    assert all(abs(qq) <= 42 for _, qq in kept)
    assert mask[np.abs(q) <= 41, :42].min() == 1  # |p|, |q| < n/3 kept
    full = np.zeros((128, 128))  # mask over the full plane through Hermitian symmetry
    for i, qq in enumerate(q):
        for p in range(65):
            full[qq % 128, p % 128] = mask[i, p]
            full[(-qq) % 128, (-p) % 128] = mask[i, p]
    assert np.array_equal(full, full[(-np.arange(128)) % 128][:, (-np.arange(128)) % 128])


def test_wavenumbers_and_parseval_weights():
    grid = Grid((8, 6), (2.0, 3.0))
    assert np.allclose(grid.kx, 2 * np.pi / 3.0 * np.arange(4))
    assert np.allclose(grid.ky, 2 * np.pi / 2.0 * np.array([0, 1, 2, 3, -4, -3, -2, -1]))
    f = np.random.default_rng(3).standard_normal(grid.shape)
    power = np.abs(np.fft.rfft2(f)) ** 2
    assert np.isclose((grid.weight * power).sum() / grid.size**2, (f**2).mean())


def test_exponential_filter_is_pyqg_filter():
    grid = Grid((64, 64), (1e6, 1e6), "exponential", filterfac=23.6)
    filt = grid.state_filter()
    kx, ky = np.meshgrid(grid.kx, grid.ky)
    kstar = np.hypot(kx * grid.dx, ky * grid.dy)
    assert np.all(filt[kstar <= 0.65 * np.pi] == 1)
    far = kstar > 0.65 * np.pi
    assert np.allclose(filt[far], np.exp(-23.6 * (kstar[far] - 0.65 * np.pi) ** 4))
    assert Grid((64, 64), (1.0, 1.0), "2/3").state_filter() is None
