"""The reference models of the emulator/refiner runtime (TorchScript modules).

They are small and exact so that tests can check the host against closed forms, and
short enough to copy as the skeleton of a real emulator or refiner:

- :class:`LinearDecay`, an emulator (``replace``, spectral, stateless): the exact
  solution of the linear part of ``navier_stokes2d``, d w/dt = (-nu |k|^2 - mu) w, over
  ``every`` steps: w(t + every dt) = exp(-(nu |k|^2 + mu) every dt) w(t);
- :class:`StochasticRelaxation`, a stateful stochastic emulator (``replace``, physical):
  w(t + h) = exp(-drag h) w(t) + h m(t + h), where m is an Ornstein-Uhlenbeck process at
  every grid point carried as the plugin's state (time scale ``tau``, stationary standard
  deviation ``sigma``), driven by the host's noise and started at a stationary draw at the
  first call; a second state entry counts the calls;
- :class:`BandRefiner`, a refiner (``post_step``, spectral, reads the previous state):
  it projects the step's update onto a band of wavenumbers, w = w_prev + P(w_new - w_prev),
  P keeping the modes with ``k_min <= |k| < k_max``.

All three are pointwise in their layout (no reductions or transforms across members),
so a member's result does not depend on the batch it runs in.
"""
import math
from typing import Dict, List, Tuple

import numpy as np
import torch
from torch import nn


def squared_wavenumbers(shape, length):
    """|k|^2 (ny, nx//2+1) float64 of the host's rfft2 layout (as ``hybridsolver.grid.Grid.k2``)."""
    ny, nx = shape
    ly, lx = length
    kx = 2 * np.pi / lx * np.arange(nx // 2 + 1)
    ky = 2 * np.pi / ly * np.fft.fftfreq(ny, 1.0 / ny)
    return kx[None, :] ** 2 + ky[:, None] ** 2


class LinearDecay(nn.Module):
    """Exact emulator of ``d w_hat/dt = -(nu |k|^2 + mu) w_hat`` over ``every`` steps.

    Input and output: vorticity spectra, complex128 ``(B, 1, ny, nx//2+1)``.
    """

    def __init__(self, shape, length, viscosity, drag):
        super().__init__()
        k2 = torch.from_numpy(squared_wavenumbers(shape, length))
        self.register_buffer("rate", -(viscosity * k2 + drag))  # 1/time, (ny, nx//2+1)

    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float]) -> torch.Tensor:
        return x * torch.exp(self.rate * (options["every"] * options["dt"]))


class StochasticRelaxation(nn.Module):
    """Damped vorticity driven by a per-point Ornstein-Uhlenbeck forcing held as state.

    Input and output: physical vorticity, float64 ``(B, 1, ny, nx)``; noise ``xi``
    ``(B, 1, ny, nx)``; state ``[m (B, 1, ny, nx), calls (B, 1)]``.  With h = every dt
    and a = exp(-h / tau): m' = a m + sqrt(1 - a^2) sigma xi (m' = sigma xi at the first
    call), w' = exp(-drag h) w + h m'.
    """

    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float],
                state: List[torch.Tensor]) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        h = options["every"] * options["dt"]
        sigma = options["sigma"]
        if options["first"] > 0.5:
            memory = sigma * noise[0]
        else:
            a = math.exp(-h / options["tau"])
            memory = a * state[0] + (math.sqrt(1.0 - a * a) * sigma) * noise[0]
        out = math.exp(-options["drag"] * h) * x + h * memory
        return out, [memory, state[1] + 1.0]


class BandRefiner(nn.Module):
    """Projects a step's update onto the band ``k_min <= |k| < k_max``.

    Input: ``(B, 2, ny, nx//2+1)`` complex128, the new and the previous vorticity spectra;
    output ``(B, 1, ny, nx//2+1)``: previous + P(new - previous).
    """

    def __init__(self, shape, length):
        super().__init__()
        self.register_buffer("k", torch.from_numpy(np.sqrt(squared_wavenumbers(shape, length))))

    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float]) -> torch.Tensor:
        band = ((self.k >= options["k_min"]) & (self.k < options["k_max"])).to(x.dtype)
        new, previous = x[:, 0:1], x[:, 1:2]
        return previous + band * (new - previous)
