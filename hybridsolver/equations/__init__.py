"""One module per PDE; :func:`make_equation` builds a case's equation and its grid."""

from ..grid import BoxGrid, Grid, PeriodicGrid1D
from .burgers2d import Burgers2D
from .kdv import KdVFiniteDifference, KdVSpectral
from .navier_stokes2d import NavierStokes2D
from .observed import Observed
from .qg2layer import QG2Layer


def make_equation(data, members, seed):
    """The equation object of a validated case ``data`` (its ``grid`` attribute is the
    case's grid) for the ensemble ``members`` and ``ensemble.seed``."""
    params, g = data["equation"], data["grid"]
    name = params["name"]
    if name == "kdv":
        grid = PeriodicGrid1D(g["shape"], g["length"], g["dealias"], g.get("origin"))
        cls = KdVSpectral if params["discretization"] == "spectral" else KdVFiniteDifference
    elif name == "burgers2d":
        grid = BoxGrid(g["shape"], g["length"], periodic=params["boundary"] == "periodic", origin=g.get("origin"))
        cls = Burgers2D
    elif name == "observed":
        grid = BoxGrid(g["shape"], g["length"], periodic=True, origin=g.get("origin"))  # cells of length / shape
        cls = Observed
    else:
        grid = Grid(g["shape"], g["length"], g["dealias"], params["filterfac"], g.get("origin"))
        cls = NavierStokes2D if name == "navier_stokes2d" else QG2Layer
    return cls(grid, params, members, seed)
