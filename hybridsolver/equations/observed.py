"""A host without dynamics for emulators of observed data (``equation.name = "observed"``).

Some emulators are trained on fields that no equation of ours has as its state: the
latent-SDE paper's cylinder data are the velocity (u, v) on a 320 x 80 window of the
wake, while ``navier_stokes2d`` steps the vorticity of the whole box.  This equation's
state is the observed fields themselves, ``equation.fields`` (names, e.g. ``["u", "v"]``),
real ``(M, C, ny, nx)`` with one channel per field in that order, on a window of
``grid.shape = (ny, nx)`` cells of ``grid.length / grid.shape`` each; ``grid.origin``
is the first cell's centre (y, x), so ``x_j = origin_x + j dx``.

Its right-hand side is zero: a ``replace`` plugin (the emulator) steps the members it
covers, and a member no plugin covers keeps its initial fields (the persistence
forecast, the baseline every emulator should beat).  The initial fields come from a
netCDF file with one variable per field (``initial_condition.type = "file"``).

Diagnostics (per member): ``mean_<field>`` (grid mean of each field), ``energy`` (grid
mean of the sum of the fields' squares, halved: the kinetic energy per unit mass for
velocity components) and ``max_abs`` (over every field).
"""
import numpy as np

from .physical import PhysicalState


class Observed(PhysicalState):
    """The zero dynamics of ``params["fields"]`` on a window grid, for ``members``."""

    name = "observed"

    def __init__(self, grid, params, members, seed=0):
        self.grid = grid
        self.members = list(members)
        self.fields = tuple(params["fields"])
        self.state_shape = (len(self.members), len(self.fields)) + grid.shape

    def explicit(self, state, out):
        """out = 0: nothing changes the fields but the plugins."""
        out[...] = 0.0

    def to_fields(self, state):
        """{field: (M, ny, nx)}: copies of the state's channels."""
        return {name: np.array(state[:, c]) for c, name in enumerate(self.fields)}

    def from_fields(self, fields):
        """State (M, C, ny, nx) from {field: (M, ny, nx)}."""
        return np.stack([np.asarray(fields[name], dtype=np.float64) for name in self.fields], axis=1)

    def diagnostics(self, state, dt):
        """Per-member scalars (M,): mean_<field>, energy (mean of the summed squares / 2), max_abs."""
        out = {f"mean_{name}": state[:, c].mean(axis=(1, 2)) for c, name in enumerate(self.fields)}
        return out | {"energy": 0.5 * (state ** 2).sum(axis=1).mean(axis=(1, 2)),
                      "max_abs": np.abs(state).max(axis=(1, 2, 3))}
