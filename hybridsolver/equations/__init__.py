"""One module per PDE; ``EQUATIONS`` maps case names to equation classes."""
from .navier_stokes2d import NavierStokes2D

EQUATIONS = {NavierStokes2D.name: NavierStokes2D}
