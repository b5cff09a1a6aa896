"""pyqg interop: build pyqg's ``QGModel`` from a ``qg2layer`` case, compare runs.

pyqg (0.7.2, the last release) is optional: it is imported only when these functions
run, and installs with ``PIP_CONSTRAINT=.ci/constraints.txt`` (it builds only with
Cython<3 and numpy<2).
"""
import numpy as np

from ..case import CaseError

# case keys of [equation] that map one to one onto QGModel keywords
_KEYS = ("beta", "rd", "delta", "H1", "U1", "U2", "rek", "filterfac")


def qg_model(sim, **kwargs):
    """A ``pyqg.QGModel`` with the physics, grid and time step of ``sim`` (a
    :class:`hybridsolver.Simulation` of ``qg2layer``), started from member 0's q.

    ``kwargs`` go to ``QGModel`` (e.g. ``q_parameterization``, ``ntd``); the model does
    not log (``log_level=0``) unless asked.
    """
    import pyqg

    if sim.equation.name != "qg2layer":
        raise CaseError(f"equation.name: pyqg runs qg2layer cases, got '{sim.equation.name}'")
    eq, g = sim.case.data["equation"], sim.grid
    if g.ny != g.nx or g.Ly != g.Lx:
        raise CaseError(f"grid.shape: pyqg needs a square grid, got {list(g.shape)} and {list(g.length)}")
    if g.dealias != "exponential":
        raise CaseError(f"grid.dealias: pyqg uses the exponential filter, got '{g.dealias}'")
    options = {"nx": g.nx, "L": g.Lx, "dt": sim.dt, "log_level": 0} | {k: eq[k] for k in _KEYS} | kwargs
    model = pyqg.QGModel(**options)
    model.q = np.ascontiguousarray(sim.fields()["q"][0])
    return model
