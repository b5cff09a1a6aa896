"""The exported modules of the SNS family (the host's calling convention, DESIGN.md §6).

- :class:`SurrogateEmulator`: the pointwise UNet as a stateless ``replace`` emulator.  The
  host hands the members' vorticity (B, 1, n, n) (physical, float32); a call advances it
  by ``every * dt`` of model time in emulator steps of the data's snapshot interval
  (``step_dt``, 0.002), so the case's ``every * dt`` must be a whole number of them (the
  dry run refuses others).
- :class:`ThermalizerEmulator` and :class:`SelfRefiningEmulator`: the surrogate's step
  refined by Thermalizer or SNS, stochastic, stateful ``replace`` emulators of exactly one
  emulator step per call.  Their state: SNS's first frame, and the number of reverse
  steps of each member's last call, which the evaluation's histograms read.
- :class:`ACDMEmulator`: ACDM's sampled next frame, a stochastic stateless ``replace``
  emulator of one step per call.
- :class:`SelfRefiningCorrector`: SNS as a ``post_step`` refiner of a solver's steps (the
  new state and the one before it in, the refined new state out).

The networks run on chunks of ``CHUNK`` members, the last one padded with zeros: oneDNN
picks its convolution kernels by the batch size, so a member's bits would otherwise
change with the size of its ensemble or the host's ``max_batch`` (the host's contract is
that batching never changes a member).  8 is the evaluation's number of initial
conditions; a smaller ensemble pays for 8 members.
"""
from typing import Dict, List, Tuple

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


def refinement_noise(noise: List[torch.Tensor]) -> torch.Tensor:
    """SNS's host noise as one tensor (B, 2 + 2 max_level, n, n): ``renoise`` (B, 2, n, n),
    then ``reverse`` (B, 2, max_level, n, n) flattened (the previous frame's steps first)."""
    reverse = noise[1]
    return torch.cat([noise[0], reverse.reshape([reverse.shape[0], -1] + reverse.shape[3:])], 1)


class ChunkedSurrogate(nn.Module):
    """The surrogate's steps of normalised frames (B, 1, n, n), on chunks of ``CHUNK``."""

    def __init__(self, surrogate):
        super().__init__()
        self.surrogate = surrogate
        self.chunk = CHUNK

    def forward(self, y: torch.Tensor, steps: int) -> torch.Tensor:
        """``y`` after ``steps`` steps (B a multiple of CHUNK: :func:`padded`)."""
        chunks: List[torch.Tensor] = []
        for start in range(0, y.shape[0], self.chunk):
            chunk = y[start:start + self.chunk]
            for _ in range(steps):
                chunk = self.surrogate.step(chunk)
            chunks.append(chunk)
        return torch.cat(chunks)


class ChunkedRefiner(nn.Module):
    """:meth:`~.refiner.SelfRefiner.refine` on chunks of ``CHUNK`` members."""

    def __init__(self, refiner):
        super().__init__()
        self.refiner = refiner
        self.chunk = CHUNK

    def forward(self, x0: torch.Tensor, prev: torch.Tensor, cur: torch.Tensor,
                noise: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(refined cur (B, 1, n, n), reverse steps (B, 1) float32) of padded frames and noise."""
        frames: List[torch.Tensor] = []
        steps: List[torch.Tensor] = []
        for start in range(0, cur.shape[0], self.chunk):
            end = start + self.chunk
            frame, used = self.refiner.refine(x0[start:end], prev[start:end], cur[start:end], noise[start:end])
            frames.append(frame)
            steps.append(used)
        return torch.cat(frames), torch.cat(steps)[:, None].float()


class SurrogateEmulator(nn.Module):
    """``forward(x, noise, options)``: x (B, 1, n, n) vorticity -> the vorticity
    ``every * dt`` later."""

    def __init__(self, surrogate, step_dt):
        super().__init__()
        self.surrogate = ChunkedSurrogate(surrogate)
        self.scale = float(surrogate.scale)
        self.step_dt = float(step_dt)
        self.chunk = CHUNK

    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float]) -> torch.Tensor:
        steps = emulator_steps(options, self.step_dt)
        return self.surrogate(padded(x / self.scale, self.chunk), steps)[:x.shape[0]] * self.scale


def one_step(options: Dict[str, float], step_dt: float):
    """Refuse calls of more than one emulator step (the refiners' noise is per step)."""
    if emulator_steps(options, step_dt) != 1:
        raise RuntimeError(f"every * dt must be the emulator's step {step_dt} (one refined step per call)")


class ThermalizerEmulator(nn.Module):
    """``forward(x, noise, options, state)``: the surrogate's step of x (B, 1, n, n), then
    :meth:`~.thermalizer.Thermalizer.thermalize` with the host's noise ``noise[0]`` (B, max_steps, n, n)
    and the sampler's ``s_init``, ``s_stop``; state: the reverse steps of the call (B, 1)."""

    def __init__(self, surrogate, thermalizer, step_dt):
        super().__init__()
        self.surrogate = ChunkedSurrogate(surrogate)
        self.thermalizer = thermalizer
        self.scale = float(surrogate.scale)
        self.step_dt = float(step_dt)
        self.chunk = CHUNK

    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float],
                state: List[torch.Tensor]) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        one_step(options, self.step_dt)
        rows = x.shape[0]
        y, z = self.surrogate(padded(x / self.scale, self.chunk), 1), padded(noise[0], self.chunk)
        frames: List[torch.Tensor] = []
        steps: List[torch.Tensor] = []
        for start in range(0, y.shape[0], self.chunk):
            frame, used = self.thermalizer.thermalize(y[start:start + self.chunk], z[start:start + self.chunk],
                                                      int(options["s_init"]), int(options["s_stop"]))
            frames.append(frame)
            steps.append(used)
        return torch.cat(frames)[:rows] * self.scale, [torch.cat(steps)[:rows, None].float()]


class SelfRefiningEmulator(nn.Module):
    """``forward(x, noise, options, state)``: the surrogate's step x_t of x = x_{t-1}
    (B, 1, n, n), refined by :meth:`~.refiner.SelfRefiner.refine` with the rollout's first frame x_0
    (state 0, (B, 1, n, n) normalised, taken from x on the member's first call) and the
    host's noise (``renoise`` (B, 2, n, n), ``reverse`` (B, 2, max_level, n, n)); state 1:
    the reverse steps of the call (B, 1)."""

    def __init__(self, surrogate, refiner, step_dt):
        super().__init__()
        self.surrogate = ChunkedSurrogate(surrogate)
        self.refiner = ChunkedRefiner(refiner)
        self.scale = float(surrogate.scale)
        self.step_dt = float(step_dt)
        self.chunk = CHUNK

    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float],
                state: List[torch.Tensor]) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        one_step(options, self.step_dt)
        rows = x.shape[0]
        x0 = x / self.scale if options["first"] > 0.5 else state[0]
        prev, first, z = (padded(a, self.chunk) for a in (x / self.scale, x0, refinement_noise(noise)))
        frame, steps = self.refiner(first, prev, self.surrogate(prev, 1), z)
        return frame[:rows] * self.scale, [x0, steps[:rows]]


class SelfRefiningCorrector(nn.Module):
    """``forward(x, noise, options, state)``: SNS refining a solver's step, a ``post_step``
    refiner.  x (B, 2, n, n) holds the new vorticity x_t and the one before the step
    x_{t-1} (channels 0 and 1); returns x_t refined by :meth:`~.refiner.SelfRefiner.refine`
    (B, 1, n, n) with the first frame x_0 (state 0: the member's x_{t-1} at its first
    call) and the host's noise as :class:`SelfRefiningEmulator`'s; state 1: the reverse
    steps of the call (B, 1)."""

    def __init__(self, refiner, scale):
        super().__init__()
        self.refiner = ChunkedRefiner(refiner)
        self.scale = float(scale)
        self.chunk = CHUNK

    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float],
                state: List[torch.Tensor]) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        rows = x.shape[0]
        y = x / self.scale
        x0 = y[:, 1:] if options["first"] > 0.5 else state[0]
        pair, first, z = (padded(a, self.chunk) for a in (y, x0, refinement_noise(noise)))
        frame, steps = self.refiner(first, pair[:, 1:], pair[:, :1], z)
        return frame[:rows] * self.scale, [x0, steps[:rows]]


class ACDMEmulator(nn.Module):
    """``forward(x, noise, options)``: the next vorticity sampled by
    :meth:`~.acdm.ACDM.sample` after x (B, 1, n, n), with the host's noise ``initial``
    (B, 1, n, n), ``conditioning`` and ``reverse`` (B, S, n, n)."""

    def __init__(self, acdm, scale, step_dt):
        super().__init__()
        self.acdm = acdm
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.step_dt = float(step_dt)
        self.chunk = CHUNK

    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float]) -> torch.Tensor:
        one_step(options, self.step_dt)
        rows = x.shape[0]
        inputs = [padded(a, self.chunk) for a in [x / self.scale] + noise]
        frames: List[torch.Tensor] = []
        for start in range(0, inputs[0].shape[0], self.chunk):
            end = start + self.chunk
            frames.append(self.acdm.sample(inputs[0][start:end], inputs[1][start:end], inputs[2][start:end],
                                           inputs[3][start:end]))
        return torch.cat(frames)[:rows] * self.scale
