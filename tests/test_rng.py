"""Member streams and Fourier-space white noise."""
import numpy as np
import pytest

from hybridsolver import rng


def test_streams_depend_only_on_seed_member_name_and_step():
    a = rng.standard_normal(3, [0, 5], "x", 7, (4,))
    b = rng.standard_normal(3, [5], "x", 7, (4,))
    assert np.array_equal(a[1], b[0])
    for other in (rng.standard_normal(4, [5], "x", 7, (4,)), rng.standard_normal(3, [5], "y", 7, (4,)),
                  rng.standard_normal(3, [5], "x", 8, (4,)), rng.standard_normal(3, [6], "x", 7, (4,))):
        assert not np.array_equal(other[0], b[0])


def test_batched_draws_are_a_fresh_generators_whatever_came_before():
    """standard_normal reuses one generator, moved from stream to stream: its rows must be
    what a new Generator of each stream draws, after an odd number of draws (a half-used
    buffer) of another stream and in any member order."""
    rng.standard_normal(9, [2], "other", 3, (3,))
    rng.generator(9, 2, "other", 3).random()
    a = rng.standard_normal(3, [5, 0, 5], "x", 7, (5,))
    for row, member in zip(a, [5, 0, 5]):
        assert np.array_equal(row, rng.generator(3, member, "x", 7).standard_normal(5))
    uniform = rng._positioned(3, 5, "x", 7).random(3)
    assert np.array_equal(uniform, rng.generator(3, 5, "x", 7).random(3))


@pytest.mark.parametrize("shape", [(16, 16), (15, 16), (16, 15), (9, 7)])
def test_spectral_white_noise_is_the_fft_of_unit_white_noise(shape):
    ny, nx = shape
    noise = rng.SpectralWhiteNoise(shape, np.ones((ny, nx // 2 + 1), dtype=bool))
    assert noise.count == ny * nx  # as many draws as grid points
    out = np.zeros((400, ny, nx // 2 + 1), dtype=complex)
    noise.draw(0, range(400), "test", 0, out)
    x = np.fft.irfft2(out, s=shape)
    assert np.allclose(np.fft.rfft2(x), out, atol=1e-12)  # a real field's spectrum
    assert abs(x.var() - 1) < 5 * np.sqrt(2 / x.size)
    assert abs(np.mean(x[:, 0, 0] * x[:, 0, 1])) < 5 / np.sqrt(400)  # neighbours uncorrelated


def test_spectral_white_noise_leaves_unsupported_modes_alone():
    support = np.zeros((8, 5), dtype=bool)
    support[1, 1] = support[1, 0] = support[7, 0] = True
    out = np.full((1, 8, 5), 3.0 + 0j)
    rng.SpectralWhiteNoise((8, 8), support).draw(0, [0], "s", 0, out)
    changed = out[0] != 3.0
    assert changed.sum() == 3 and out[0, 7, 0] == np.conj(out[0, 1, 0])
