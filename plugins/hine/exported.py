"""The exported modules of the HINE family (the host's calling convention, DESIGN.md §6):
:class:`HierarchicalEmulator`, one emulator step of a variant of :mod:`.hierarchy` per
call, a ``replace`` plugin on the 64² vorticity (B, 1, n, n) (physical, float32), the
case's ``every * dt`` equal to the data's snapshot interval (0.05).

State (per member, normalised by 1/10): ``L2`` keeps z1 (1, n/2, n/2), the level-1
latent it predicted for the frame after the next; ``L3`` keeps z1 and z2 (1, n/8, n/8);
``history`` keeps the previous frame (1, n, n); ``L1`` is stateless.  On a member's first
call (``options["first"]``) the latents are built by the start-up cases as in the
authors' rollout: case A from u_0 (z1 of u_1), for L3 case B (z2 of u_2), then case C;
the history baseline's first step is its case A (no previous frame).  A later call is
one pass of case C with the state.

The network runs on chunks of ``CHUNK`` members (the last padded with zeros), as in
:mod:`plugins.sns.exported`: oneDNN picks convolution kernels by batch size, and the
host's contract is that batching never changes a member's bits.
"""
from typing import Dict, List, Tuple

import torch
from torch import nn

from ..sns.exported import emulator_steps, padded
from .hierarchy import A, B, C

CHUNK = 8  # members per network call


class HierarchicalEmulator(nn.Module):
    """``forward(x, noise, options, state)``: x (B, 1, n, n) vorticity -> the vorticity one
    emulator step later and the new state (see the module's docstring)."""

    def __init__(self, model, scale, step_dt):
        super().__init__()
        self.model = model
        self.levels = int(model.levels)
        self.history = bool(model.history)
        n1, n2 = model.latent_shapes()
        self.n1, self.n2 = int(n1), int(n2)
        self.scale = float(scale)
        self.step_dt = float(step_dt)
        self.chunk = CHUNK
        self.cases = [A, B, C]

    def _chunk_step(self, u: torch.Tensor, state: List[torch.Tensor],
                    first: bool) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """One emulator step of ``CHUNK`` normalised members."""
        b = u.shape[0]
        zero1, zero2 = u.new_zeros(b, 1, self.n1, self.n1), u.new_zeros(b, 1, self.n2, self.n2)
        cases = [torch.full([b], k, dtype=torch.long, device=u.device) for k in self.cases]
        if self.history:
            prev = torch.zeros_like(u) if first else state[0]
            u_next, _, _ = self.model.step(u, prev, zero1, zero2, cases[0] if first else cases[2])
            return u_next, [u]
        z1, z2 = zero1, zero2
        if self.levels >= 2:
            if first:
                _, z1, _ = self.model.step(u, zero1, zero1, zero2, cases[0])
            else:
                z1 = state[0]
        if self.levels == 3:
            if first:
                _, _, z2 = self.model.step(u, zero1, z1, zero2, cases[1])
            else:
                z2 = state[1]
        u_next, z1_next, z2_next = self.model.step(u, zero1, z1, z2, cases[2])
        if self.levels == 3:
            return u_next, [z1_next, z2_next]
        if self.levels == 2:
            return u_next, [z1_next]
        return u_next, state

    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float],
                state: List[torch.Tensor]) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        if emulator_steps(options, self.step_dt) != 1:
            raise RuntimeError(f"every * dt must be the emulator's step {self.step_dt} (one step per call)")
        rows = x.shape[0]
        u = padded(x / self.scale, self.chunk)
        held = [padded(s, self.chunk) for s in state]
        first = options["first"] > 0.5
        frames: List[torch.Tensor] = []
        parts: List[List[torch.Tensor]] = [[] for _ in held]
        for start in range(0, u.shape[0], self.chunk):
            end = start + self.chunk
            frame, new = self._chunk_step(u[start:end], [s[start:end] for s in held], first)
            frames.append(frame)
            for k, s in enumerate(new):
                parts[k].append(s)
        out_state = [torch.cat(p)[:rows] for p in parts]
        return torch.cat(frames)[:rows] * self.scale, out_state


class StatelessEmulator(nn.Module):
    """``forward(x, noise, options)``: :class:`HierarchicalEmulator` of the stateless L1."""

    def __init__(self, emulator):
        super().__init__()
        self.emulator = emulator

    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float]) -> torch.Tensor:
        frame, _ = self.emulator(x, noise, options, [])
        return frame
