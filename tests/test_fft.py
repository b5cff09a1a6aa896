"""FFTW transforms: correctness and member independence."""
import numpy as np
import pytest

from hybridsolver import fft


def random_members(members, shape, seed):
    """Aligned standard-normal physical fields (members, *shape)."""
    x = fft.empty((members,) + tuple(shape), np.float64)
    x[...] = np.random.default_rng(seed).standard_normal(x.shape)
    return x


@pytest.mark.parametrize("shape", [(32, 32), (48, 40), (63, 64), (256, 256), (128,)])
def test_forward_and_inverse_match_numpy(shape):
    tr = fft.transforms(shape)
    x = random_members(3, shape, seed=1)
    x_hat = tr.to_spectral(x)
    axes = tuple(range(1, len(shape) + 1))
    assert np.allclose(x_hat, np.fft.rfftn(x, axes=axes), rtol=0, atol=1e-12 * np.abs(x_hat).max())
    assert np.allclose(tr.to_physical(x_hat), x, rtol=0, atol=1e-13)


@pytest.mark.parametrize("shape", [(64, 64), (256, 256)])
def test_member_bits_do_not_depend_on_ensemble_size(shape):
    """Every member goes through the same single-member plan."""
    tr = fft.transforms(shape)
    x = random_members(8, shape, seed=2)
    batched = tr.to_spectral(x)
    for m in (0, 5):
        alone = tr.to_spectral(x[m:m + 1])
        assert np.array_equal(alone[0], batched[m])
        assert np.array_equal(tr.to_physical(alone)[0], tr.to_physical(batched)[m])


def test_misshaped_or_misaligned_arrays_are_refused():
    tr = fft.transforms((32, 32))
    x = fft.empty((2, 32, 32), np.float64)
    out = fft.empty((2, 32, 17), np.complex128)
    with pytest.raises(ValueError, match="C-contiguous"):
        tr.forward(x[:, :, :16].copy(), out)
    raw = np.empty(2 * 32 * 32 + 1)
    unaligned = raw[1:].reshape(2, 32, 32) if raw[1:].ctypes.data % fft.ALIGNMENT else raw[:-1].reshape(2, 32, 32)
    with pytest.raises(ValueError, match="aligned"):
        tr.forward(unaligned, out)


@pytest.mark.parametrize("shape,columns", [((64, 64), 22), ((256, 256), 44), ((48, 40), 12)])
def test_forward_stopped_at_a_column_matches_full_transform_there(shape, columns):
    tr = fft.transforms(shape)
    x = random_members(4, shape, seed=5)
    full = tr.to_spectral(x)
    part = fft.empty(full.shape, np.complex128)
    tr.forward(x, part, columns=columns)
    assert np.allclose(part[..., :columns], full[..., :columns], rtol=0, atol=1e-12 * np.abs(full).max())
    assert not np.allclose(part[..., columns:], full[..., columns:])  # the rest was skipped
    alone = fft.empty((1,) + full.shape[1:], np.complex128)
    tr.forward(random_members(4, shape, seed=5)[2:3], alone, columns=columns)
    assert np.array_equal(alone[0, :, :columns], part[2, :, :columns])
