"""hybridsolver: an ensemble spectral PDE host for machine-learned closures."""
from .case import CaseError, load_case
from .simulation import Simulation

__version__ = "0.1.0"
__all__ = ["CaseError", "Simulation", "load_case", "__version__"]
