"""The exported modules of the SNS family (the host's calling convention, DESIGN.md §6).

- :class:`SurrogateEmulator`: the pointwise UNet as a stateless ``replace`` emulator.  The
  host hands the members' vorticity (B, 1, n, n) (physical, float32); a call advances it
  by ``every * dt`` of model time in emulator steps of the data's snapshot interval
  (``step_dt``, 0.002), so the case's ``every * dt`` must be a whole number of them (the
  dry run refuses others).

The networks run on chunks of ``CHUNK`` members, the last one padded with zeros: oneDNN
picks its convolution kernels by the batch size, so a member's bits would otherwise
change with the size of its ensemble or the host's ``max_batch`` (the host's contract is
that batching never changes a member).  8 is the evaluation's number of initial
conditions; a smaller ensemble pays for 8 members.
"""
from typing import Dict, List

import torch
from torch import nn

CHUNK = 8  # members per call of a network


def padded(x: torch.Tensor, chunk: int) -> torch.Tensor:
    """``x`` (B, ...) with zero rows appended up to a multiple of ``chunk``."""
    missing = -x.shape[0] % chunk
    return torch.cat([x, x.new_zeros([missing] + x.shape[1:])]) if missing else x


def emulator_steps(options: Dict[str, float], step_dt: float) -> int:
    """The number of emulator steps of ``step_dt`` in one call of ``every * dt`` (options)."""
    span = options["every"] * options["dt"]
    steps = int(round(span / step_dt))
    if steps < 1 or abs(steps * step_dt - span) > 1e-6 * step_dt:
        raise RuntimeError(f"every * dt = {span} is not a whole number of the emulator's steps of {step_dt}")
    return steps


class SurrogateEmulator(nn.Module):
    """``forward(x, noise, options)``: x (B, 1, n, n) vorticity -> the vorticity
    ``every * dt`` later."""

    def __init__(self, surrogate, step_dt):
        super().__init__()
        self.surrogate = surrogate
        self.step_dt = float(step_dt)
        self.chunk = CHUNK

    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float]) -> torch.Tensor:
        steps = emulator_steps(options, self.step_dt)
        y = padded(x / self.surrogate.scale, self.chunk)
        chunks: List[torch.Tensor] = []
        for start in range(0, y.shape[0], self.chunk):
            chunk = y[start:start + self.chunk]
            for _ in range(steps):
                chunk = self.surrogate.step(chunk)
            chunks.append(chunk)
        return torch.cat(chunks)[:x.shape[0]] * self.surrogate.scale
