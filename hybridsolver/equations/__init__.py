"""One module per PDE; ``EQUATIONS`` maps case names to equation classes."""
from .navier_stokes2d import NavierStokes2D
from .qg2layer import QG2Layer

EQUATIONS = {cls.name: cls for cls in (NavierStokes2D, QG2Layer)}
