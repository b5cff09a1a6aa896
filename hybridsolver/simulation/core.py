"""The simulation: ensemble state, clock, initial condition, the solver step and output fields.

One solver step is, in order: the stepper's update (``time.scheme``, with the held
tendency of tendency hooks added to its explicit term) and state filter
(``dealias = "exponential"``), the relaxation of a penalized body, sponge and walls
(``navier_stokes2d``'s ``equation.obstacle`` and ``equation.inflow``: after each stage
of ``cn_rk4``, after the update of the other schemes), then the
stochastic forcing increment drawn from
each member's stream at the index of the step (0 for the step from 0 to 1).  Hooks
act around it in the order given in :mod:`hybridsolver.hooks`
(:mod:`hybridsolver.simulation.hooked`).
"""
import os

import numpy as np

from .. import fft
from ..case import CaseError, load_case
from ..checkpoint import load_checkpoint, save_checkpoint
from ..equations import make_equation
from ..initial_conditions import make_initial
from ..plugin import plugin_hooks
from ..steppers import make_stepper
from .hooked import HookedSteps
from .monitoring import Monitoring
from .running import RunLoop


class Simulation(HookedSteps, Monitoring, RunLoop):
    """An ensemble of ``ensemble.members`` runs of one case, stepped together.

    ``state`` is the equation's state (``equation.state_shape``, ``state_dtype``): the
    spectral state, complex ``(M, [layers,] ny, nx//2+1)`` or ``(M, n//2+1)``, or the
    physical field of finite-difference equations, real ``(M, [ny,] nx)``; ``step`` counts
    steps taken and ``time = time.start + step * dt``.
    """

    def __init__(self, case):
        self.case = case
        d = case.data
        ens = d["ensemble"]
        self.seed = ens["seed"]
        self.members = list(range(ens["first_member"], ens["first_member"] + ens["members"]))
        self.equation = make_equation(d, self.members, self.seed)
        self.stepper = make_stepper(d["time"]["scheme"], self.equation, d["time"]["dt"])
        self.penalization = getattr(self.equation, "penalization", None)
        if self.penalization is not None and self.stepper.stage_relaxation:
            self.stepper.set_relaxation(self.equation.relax)
        self.grid = self.equation.grid
        self.dt = d["time"]["dt"]
        self.start_time = d["time"]["start"]
        self.total_steps = case.steps
        self.state = fft.zeros(self.equation.state_shape, self.equation.state_dtype)
        self.step = 0
        self.output_names = self._output_names(d["output"].get("fields"))
        case_dir = os.path.dirname(os.path.abspath(case.path)) if case.path else None
        self.set_initial({field: make_initial(d["initial_condition"], self.grid, self.seed, self.members, case_dir,
                                              field, self.field_shape(field)) for field in self.equation.fields})
        self.hooks = []
        self._hooks_started = False
        self._tendency = None
        self._previous = None
        self.member_status = ["ok"] * len(self.members)
        self.quarantined = np.zeros(len(self.members), bool)
        self._signal = None
        self._bounds = self._monitor_bounds(case_dir)
        for hook in plugin_hooks(self):
            self.add_hook(hook)

    @classmethod
    def from_case(cls, source, overrides=None):
        """Build from a case file path or raw dict, with ``{"a.b": value}`` overrides."""
        return cls(load_case(source, overrides))

    @property
    def time(self):
        return self.time_at(self.step)

    def time_at(self, step):
        """The model time of ``step`` (an int or an array of them): time.start + step * dt."""
        return self.start_time + step * self.dt

    def field_shape(self, name):
        """One member's physical shape of field ``name`` (a state field or a derived one):
        ``(ny, nx)``, or ``(layers, ny, nx)`` for layered fields (``equation.field_layers``,
        ``equation.derived_fields``)."""
        eq = self.equation
        layers = eq.field_layers.get(name, eq.derived_fields.get(name))
        return (layers,) + self.grid.shape if layers else self.grid.shape

    def set_initial(self, fields):
        """Set the state from physical fields, each of one member's shape (:meth:`field_shape`,
        e.g. ``(ny, nx)``) or with the members first, ``(M, ny, nx)``.

        Restarts multistep history (``ab3`` starts again with Euler and AB2).
        """
        names = self.equation.fields
        unknown = sorted(set(fields) - set(names))
        if unknown or set(fields) != set(names):
            raise CaseError(f"set_initial: expected fields {list(names)}, got {sorted(fields)}")
        shaped = {}
        M = len(self.members)
        for name, value in fields.items():
            arr = np.asarray(value, dtype=np.float64)
            shape = self.field_shape(name)
            if arr.shape == shape:
                arr = np.broadcast_to(arr, (M,) + arr.shape)
            if arr.shape != (M,) + shape:
                raise CaseError(f"set_initial: field '{name}' has shape {arr.shape}, expected "
                                f"{shape} or {(M,) + shape}")
            shaped[name] = arr
        self.state[...] = self.equation.from_fields(shaped)
        if hasattr(self.stepper, "reset"):
            self.stepper.reset()

    def set_source(self, source):
        """Add a time-dependent source to the right-hand side: ``source(t, out)`` adds its
        value at time ``t`` to ``out`` (state shape and dtype: spectral for spectral
        equations) in place; the stepper calls it at every stage time (manufactured
        solutions, prescribed forcing).  None removes it."""
        self.stepper.set_source(source)

    def _solver_step(self):
        self.stepper.step(self.state, self.time)
        if self.penalization is not None:
            if not self.stepper.stage_relaxation:
                self.equation.relax(self.state, self.dt)
            self.penalization.end_step(self.dt)
        self.equation.add_noise(self.state, self.step, self.dt)
        self.step += 1

    def advance(self, steps):
        """Take ``steps`` steps with hooks (no outputs); see :mod:`hybridsolver.hooks`."""
        self._advance(self.step + int(steps), self.step + int(steps))

    def _advance(self, until, limit):
        """Step until ``step >= until``; a replace hook's jump may end after ``until`` but
        not after ``limit`` (the next output, monitor check or checkpoint of :meth:`run`)."""
        self.start_hooks()
        if not self.hooks:
            while self.step < until and self._signal is None:
                self._solver_step()
                self._hold_quarantined()
            return
        while self.step < until and self._signal is None or self._pending:
            rollout = self._resident.ready(limit) if self._resident and not self._pending else None
            if rollout is not None:
                self._resident.run(rollout, until, limit)
            else:
                self._host_iteration(limit)
            self._hold_quarantined()
            self._observe()

    def save_checkpoint(self, path):
        """Write what continuing this run needs to ``path`` (.npz) atomically
        (:func:`hybridsolver.checkpoint.save_checkpoint`); ValueError if a value is not finite."""
        save_checkpoint(self, path)

    def load_checkpoint(self, path):
        """Continue from a checkpoint of :meth:`save_checkpoint` made by a simulation of the
        same case (:func:`hybridsolver.checkpoint.load_checkpoint`); CaseError naming ``path``
        otherwise."""
        load_checkpoint(self, path)

    def fields(self):
        """Physical fields, ``{name: (M, *field_shape(name)) numpy array}``."""
        return self.equation.to_fields(self.state)

    def _output_names(self, names):
        """``output.fields`` checked against the equation's state and derived fields (default:
        the state's fields); CaseError naming the key otherwise."""
        eq = self.equation
        if names is None:
            return list(eq.fields)
        offered = list(eq.fields) + list(eq.derived_fields)
        for i, name in enumerate(names):
            if name not in offered:
                raise CaseError(f"output.fields: unknown field {name!r} ({eq.name} offers: {', '.join(offered)})")
            if name in names[:i]:
                raise CaseError(f"output.fields: {name!r} is listed twice")
        return list(names)

    def output_fields(self):
        """The output variables (``output.fields``): ``{name: (M, *field_shape(name))
        physical numpy array}``, state fields and derived ones (e.g. ``navier_stokes2d``'s
        velocity ``u``, ``v``) in the order the case lists them."""
        eq = self.equation
        state = eq.to_fields(self.state) if set(self.output_names) & set(eq.fields) else {}
        derived = eq.derived_spectra(self.state, self.output_names)
        values = {}
        for name in self.output_names:
            if name in state:
                values[name] = state[name]
            else:
                flat = eq.transforms.to_physical(derived[name].reshape((-1,) + self.grid.spectral_shape))
                values[name] = flat.reshape((len(self.members),) + self.field_shape(name))
        return values

    def diagnostics(self):
        """Per-member scalars (M,) and spectra (M, nshell) of the current state."""
        return self.equation.diagnostics(self.state, self.dt) | self.equation.spectra(self.state)

    def finite_members(self):
        """Boolean (M,): members whose state is all finite."""
        return np.isfinite(self.state).all(axis=tuple(range(1, self.state.ndim)))
