"""pyqg interop: pyqg's ``QGModel`` from a ``qg2layer`` case, and our artifacts inside pyqg.

- :func:`qg_model` builds the ``pyqg.QGModel`` of a simulation (same physics, grid,
  time step, and member 0's q).
- :func:`case_from_model` goes the other way: the one-member ``qg2layer`` case of a model.
- :class:`ArtifactParameterization` runs one of our closure artifacts (callsite
  ``tendency``) as a ``pyqg.QParameterization``, so that a pyqg user passes it as
  ``pyqg.QGModel(q_parameterization=...)``.

pyqg (0.7.2, the last release) is optional for hybridsolver; this module needs it.  It
installs with ``PIP_CONSTRAINT=.ci/constraints.txt`` (it builds only with Cython<3 and
numpy<2).
"""
import numpy as np

try:
    import pyqg
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("hybridsolver.interop.pyqg needs pyqg 0.7.2: "
                      "PIP_CONSTRAINT=.ci/constraints.txt pip install pyqg==0.7.2") from exc

from ..case import CaseError
from ..plugin import PluginError, read_artifact, resolve

# case keys of [equation] that map one to one onto QGModel keywords
_KEYS = ("beta", "rd", "delta", "H1", "U1", "U2", "rek", "filterfac")


def qg_model(sim, **kwargs):
    """A ``pyqg.QGModel`` with the physics, grid and time step of ``sim`` (a
    :class:`hybridsolver.Simulation` of ``qg2layer``), started from member 0's q.

    ``kwargs`` go to ``QGModel`` (e.g. ``q_parameterization``, ``ntd``); the model does
    not log (``log_level=0``) unless asked.
    """
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


def case_from_model(model, seed=0, member=0, plugins=()):
    """The one-member ``qg2layer`` case (a dict for :meth:`Simulation.from_case`) of a
    ``pyqg.QGModel``: its physics, grid and time step, ensemble member ``member`` of
    ``seed`` (the keys of the member's random streams), and ``plugins`` entries."""
    physics = {"beta": model.beta, "rd": model.rd, "delta": model.delta, "H1": model.Hi[0], "U1": model.U1,
               "U2": model.U2, "rek": model.rek, "filterfac": model.filterfac}
    return {
        "equation": {"name": "qg2layer"} | {k: float(v) for k, v in physics.items()},
        "grid": {"shape": [int(model.ny), int(model.nx)], "length": [float(model.W), float(model.L)],
                 "dealias": "exponential"},
        "initial_condition": {"type": "pyqg_random"},
        "time": {"scheme": "ab3", "dt": float(model.dt), "steps": 1},
        "ensemble": {"members": 1, "seed": int(seed), "first_member": int(member)},
        "plugins": [dict(p) for p in plugins],
    }


class ArtifactParameterization(pyqg.QParameterization):
    """One of our closure artifacts as a pyqg PV parameterization.

    ``path``: an artifact file or registered plugin name, of callsite ``tendency`` and
    equation ``qg2layer``.  At the model's first call the artifact is checked against
    the model (grid, fields, ``equation_parameters``) through a one-member
    :class:`hybridsolver.Simulation` built by :func:`case_from_model`, and dry-run.

    Each call gives the artifact the model's state ``qh`` at step ``model.tc`` and returns
    the tendency as the physical ``dq`` (nz, ny, nx) pyqg expects.  As in our host, the
    artifact runs every ``every`` steps (default: the manifest's) and its tendency is held
    in between; a stochastic artifact's noise comes from the stream of ensemble member
    ``member`` of ``seed`` at step ``model.tc``, so the model follows the same trajectory
    as that member in our host.  ``sampler`` overrides the artifact's sampler settings.
    """

    def __init__(self, path, every=None, sampler=None, seed=0, member=0, device="cpu"):
        manifest = read_artifact(resolve(path))
        if manifest["callsite"] != "tendency":
            raise PluginError(f"{path}: a pyqg parameterization needs an artifact of callsite 'tendency', "
                              f"this one is '{manifest['callsite']}'")
        self.name = manifest["name"]
        self.entry = {"path": path, "device": device} | ({"every": every} if every else {}) | (
            {"sampler": dict(sampler)} if sampler else {})
        self.seed, self.member = seed, member
        self.sim = self.hook = self.held = None

    def _start(self, model):
        from ..simulation import Simulation

        self.sim = Simulation.from_case(case_from_model(model, self.seed, self.member, [self.entry]))
        self.sim.start_hooks()
        self.hook = self.sim.hooks[0]

    def __call__(self, model):
        """The artifact's PV tendency for ``model``'s current state, physical (nz, ny, nx) in 1/s^2."""
        if self.sim is None:
            self._start(model)
        if self.held is None or self.hook.schedule.due(model.tc, model.dt):
            self.sim.step = model.tc
            self.sim.state[0] = model.qh
            self.held = self.hook(self.sim, self.sim.state)[0]
        return model.ifft(self.held)

    def __repr__(self):
        return f"ArtifactParameterization({self.name})"
