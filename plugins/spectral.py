"""Batch-invariant spectral transforms for plugin modules (torch).

2D transforms are done as 1D transforms along the last, contiguous axis (with
transposes for the columns): torch's CPU ``rfft2`` (MKL) pairs batch members in
vector lanes, so a member's bits would change with the batch size; row by row
transforms do not, and the host's contract is that batching never changes a member.
"""
import torch
from torch import nn


def rfft2_rows(f: torch.Tensor) -> torch.Tensor:
    """rfft2 of real (..., ny, nx) to (..., ny, nx//2+1), batch-invariant."""
    rows = torch.fft.rfft(f, dim=-1)
    return torch.fft.fft(rows.transpose(-1, -2).contiguous(), dim=-1).transpose(-1, -2)


def irfft2_rows(f_hat: torch.Tensor, nx: int) -> torch.Tensor:
    """irfft2 of (..., ny, nx//2+1) to real (..., ny, nx), batch-invariant."""
    columns = torch.fft.ifft(f_hat.transpose(-1, -2).contiguous(), dim=-1)
    return torch.fft.irfft(columns.transpose(-1, -2).contiguous(), n=nx, dim=-1)


class RowTransforms(nn.Module):
    """The unnormalised rfft2 and its inverse over the last two axes of ``(..., ny, nx)``."""

    def __init__(self, shape):
        super().__init__()
        self.shape = (int(shape[0]), int(shape[1]))

    def spectral(self, f: torch.Tensor) -> torch.Tensor:
        """rfft2 of real (..., ny, nx) to (..., ny, nx//2+1), batch-invariant."""
        return rfft2_rows(f)

    def real(self, f_hat: torch.Tensor) -> torch.Tensor:
        """irfft2 of (..., ny, nx//2+1) to real (..., ny, nx), batch-invariant."""
        return irfft2_rows(f_hat, self.shape[1])
