"""The step loop: ensemble state, clock, stochastic forcing, hooks, outputs.

One solver step is, in order: the stepper's update (``time.scheme``, with the held
tendency of tendency hooks added to its explicit term) and state filter
(``dealias = "exponential"``), the relaxation of a penalized body, sponge and walls
(``navier_stokes2d``'s ``equation.obstacle`` and ``equation.inflow``), then the
stochastic forcing increment drawn from
each member's stream at the index of the step (0 for the step from 0 to 1).  Hooks
act around it in the order given in :mod:`hybridsolver.hooks`.
"""
import contextlib
import os
import signal
import threading
import time

import numpy as np
from tqdm import tqdm

from . import fft, rng, rundir
from .case import CaseError, load_case, resolve_path
from .checkpoint import checkpoint_arrays, load_checkpoint, save_checkpoint
from .equations import make_equation
from .equations.obstacle import wake_statistics
from .hooks import CALLSITES, HookStats, check_replace_overlap, check_returned, member_rows, read_only, timed_call
from .initial_conditions import make_initial
from .output import RunWriter, WriteError, read_diagnostic, read_series
from .plugin import plugin_hooks
from .plugin.resident import ResidentRollout
from .rundir import CHECKPOINT
from .stability import reference_band
from .steppers import make_stepper


class Simulation:
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

    # ---- hooks ------------------------------------------------------------------

    def add_hook(self, hook):
        """Add a hook (:class:`hybridsolver.hooks.Hook`) after those already added.

        Its name must be unique (it keys the hook's noise streams and its figures in
        ``summary.json``).  Hooks are started by the first :meth:`advance` or :meth:`run`.
        """
        if self._hooks_started:
            raise RuntimeError("add_hook: hooks must be added before the first step")
        names = {h.name for h in self.hooks}
        if hook.name is None:
            base = type(hook).__name__
            hook.name = next(n for n in [base] + [f"{base}.{i}" for i in range(1, len(names) + 2)] if n not in names)
        elif hook.name in names:
            raise CaseError(f"hook name '{hook.name}' is used twice (give the hook, or plugins.N.name, "
                            "a distinct name)")
        try:
            hook.rows = member_rows(hook.members, self.members)
        except ValueError as exc:
            raise CaseError(f"hook '{hook.name}' members: {exc}") from None
        hook.label = hook.label or f"hook '{hook.name}'"
        hook.bind_window(self.dt, self.start_time)
        hook.stats = HookStats()
        rows_shape = self.state[hook.rows].shape
        if hook.callsite == "replace":
            if self.case.data["time"]["scheme"] == "ab3":
                raise CaseError(f"{hook.label}: a replace plugin needs a one-step time.scheme (not ab3, whose "
                                "history would mix solved and emulated steps)")
            hook.landing = fft.zeros(rows_shape, self.state.dtype)
            hook.jump_start = fft.zeros(rows_shape, self.state.dtype)
        if hook.callsite == "tendency":
            hook.holding = False
            hook.held = fft.zeros(rows_shape, self.state.dtype)
            if self._tendency is None:
                self._tendency = fft.zeros(self.state.shape, self.state.dtype)
                self.stepper.set_tendency(self._tendency)
            if hook.hold_noise:
                if len(rows_shape) != 3 or self.state.dtype != np.complex128:
                    raise CaseError(f"hook '{hook.name}': hold_noise needs a single-layer 2D spectral state, "
                                    f"{self.equation.name} has state shape {rows_shape[1:]}")
                hook.white_noise = rng.SpectralWhiteNoise(self.grid.shape, np.ones(self.grid.spectral_shape, bool))
                hook.noise_hat = fft.zeros(rows_shape, np.complex128)
        if hook.callsite == "post_step" and self._previous is None:
            self._previous = fft.zeros(self.state.shape, self.state.dtype)
        self.hooks.append(hook)

    def _at(self, callsite):
        """The hooks of one callsite, in order (fixed once the hooks are started)."""
        return self._callsites[callsite]

    def start_hooks(self, observe=True):
        """Start the hooks (artifacts load and make their dry run) and call the observe hooks
        due at the current step (not with ``observe=False``: a resumed run has called them).
        Done once, by the first :meth:`advance` or :meth:`run`."""
        if self._hooks_started:
            return
        self._callsites = {c: [h for h in self.hooks if h.callsite == c] for c in CALLSITES}
        check_replace_overlap(self._callsites["replace"], self.members, self.dt, self.start_time)
        for hook in self.hooks:
            hook.start(self)
        self._noisy = [h for h in self._callsites["tendency"] if h.hold_noise]
        self._pending = {}  # replace hook -> step its jump lands at (its rows' state then in hook.landing)
        self._covered = np.zeros(len(self.members), bool)
        self._resident = ResidentRollout(self) if self.case.data["runtime"]["resident"] else None
        self._hooks_started = True
        if observe:
            self._observe()

    def finish_hooks(self):
        """Call every hook's ``finish`` (done by :meth:`run` when it ends)."""
        for hook in self.hooks:
            hook.finish(self)

    def hook_report(self, wall_seconds=None):
        """{hook name: calls, total and mean ms, share of ``wall_seconds``, bytes moved,
        host round trips}."""
        return {h.name: h.stats.report(wall_seconds) for h in self.hooks}

    def transfer_report(self):
        """The run's traffic between the host's state and its plugins: bytes to and from a
        GPU and host round trips (summed over hooks), and the device-resident segments and
        the steps they took (:mod:`hybridsolver.plugin.resident`)."""
        stats = [h.stats for h in self.hooks]
        resident = self._resident if self._hooks_started else None
        return {"bytes_to_device": sum(s.bytes_to_device for s in stats),
                "bytes_from_device": sum(s.bytes_from_device for s in stats),
                "host_round_trips": sum(s.round_trips for s in stats),
                "resident_segments": resident.segments if resident else 0,
                "resident_steps": resident.steps if resident else 0}

    def _update_tendency(self):
        """Call the tendency hooks due now; set the summed held tendency (+ hold noise)."""
        hooks = self._at("tendency")
        changed = False
        for hook in hooks:
            if not hook.active(self.step):
                if hook.holding:  # its window closed
                    hook.held[...] = 0.0
                    hook.holding, changed = False, True
            elif hook.schedule.due(self.step, self.dt):
                value = timed_call(hook, self, read_only(self.state[hook.rows]))
                hook.held[...] = check_returned(hook, value, hook.held.shape, self.step)
                hook.holding, changed = True, True
        if not (changed or self._noisy):
            return
        self._sum_held(hooks)
        for hook in self._noisy:
            if not hook.active(self.step):
                continue
            hook.white_noise.draw(self.seed, self.members[hook.rows], f"{hook.name}:hold_noise", self.step,
                                  hook.noise_hat)
            hook.noise_hat *= hook.hold_noise
            self._tendency[hook.rows] += hook.noise_hat

    def _sum_held(self, hooks):
        """Set the stepper's tendency to the sum of the tendency ``hooks``' held tendencies."""
        self._tendency[...] = 0.0
        for hook in hooks:
            self._tendency[hook.rows] += hook.held

    def _observe(self):
        for hook in self._at("observe"):
            if hook.due(self.step, self.dt):
                timed_call(hook, self, read_only(self.state[hook.rows]))

    def set_source(self, source):
        """Add a time-dependent source to the right-hand side: ``source(t, out)`` adds its
        value at time ``t`` to ``out`` (state shape and dtype: spectral for spectral
        equations) in place; the stepper calls it at every stage time (manufactured
        solutions, prescribed forcing).  None removes it."""
        self.stepper.set_source(source)

    def _solver_step(self):
        self.stepper.step(self.state, self.time)
        if getattr(self.equation, "penalization", None) is not None:
            self.equation.relax(self.state, self.dt)
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

    def _host_iteration(self, limit):
        """One step (or one jump of replace hooks covering every member) with the hooks
        acting on the host's state, in the order of :mod:`hybridsolver.hooks`.

        A replace hook due at ``s`` whose jump ``s + every`` fits before ``limit`` returns
        its rows' state at ``s + every``; the solver steps the state unless every row is
        in a jump (covered rows are stepped too, and set back: they hold their jump's
        start state until it lands).  Otherwise the solver takes those steps."""
        if self._tendency is not None:
            self._update_tendency()
        for hook in self._at("replace"):
            every = hook.schedule.every
            if hook not in self._pending and hook.due(self.step, self.dt) and self.step + every <= limit:
                value = timed_call(hook, self, self.state[hook.rows])
                hook.landing[...] = check_returned(hook, value, hook.landing.shape, self.step)
                if every > 1:  # the rows hold this state until the jump lands
                    hook.jump_start[...] = self.state[hook.rows]
                self._pending[hook] = self.step + every
        post_step = self._at("post_step")
        if post_step:
            self._previous[...] = self.state
        self._covered[...] = False
        for hook in self._pending:
            self._covered[hook.rows] = True
        if self._pending and self._covered.all():
            self.step = min(self._pending.values())
        else:
            self._solver_step()
        for hook, lands in list(self._pending.items()):
            self.state[hook.rows] = hook.landing if lands == self.step else hook.jump_start
            if lands == self.step:
                del self._pending[hook]
        for hook in post_step:
            if hook.due(self.step, self.dt):
                value = timed_call(hook, self, self.state[hook.rows], read_only(self._previous[hook.rows]))
                self.state[hook.rows] = check_returned(hook, value, self.state[hook.rows].shape, self.step)

    # ---- monitors and quarantine ------------------------------------------------

    def _monitor_bounds(self, case_dir):
        """(low, high) allowed for ``monitor.quantity`` (a per-member diagnostics scalar), or
        None: ``monitor.bounds``, or the mean +- ``monitor.reference_sigmas`` standard
        deviations of that quantity over every member and record of the ``[reference]`` run
        directory's ``diagnostics.nc``."""
        mon = self.case.data["monitor"]
        if "bounds" in mon and "reference_sigmas" in mon:
            raise CaseError("monitor.bounds: give at most one of monitor.bounds and monitor.reference_sigmas")
        if "bounds" not in mon and "reference_sigmas" not in mon:
            return None
        quantity = mon["quantity"]
        names = list(self.equation.diagnostics(self.state[:1], self.dt))
        if quantity not in names:
            raise CaseError(f"monitor.quantity: {self.equation.name} has no diagnostic '{quantity}' "
                            f"(expected one of: {', '.join(names)})")
        if "bounds" in mon:
            low, high = mon["bounds"]
            if not low < high:
                raise CaseError(f"monitor.bounds: expected [low, high] with low < high, got {mon['bounds']}")
            return low, high
        reference = self.case.data.get("reference", {})
        if "dir" not in reference:
            raise CaseError("monitor.reference_sigmas: needs reference.dir (a run directory whose "
                            "diagnostics.nc gives the mean and standard deviation)")
        path = os.path.join(resolve_path(reference["dir"], case_dir), "diagnostics.nc")
        return reference_band(read_diagnostic(path, quantity), mon["reference_sigmas"])

    def failed_members(self):
        """{row: reason} of the members not yet quarantined whose state is not finite or
        whose ``monitor.quantity`` lies outside the monitor's bounds."""
        finite = self.finite_members()
        running = ~self.quarantined
        failed = {row: "non-finite state" for row in np.flatnonzero(running & ~finite)}
        if self._bounds is not None:
            low, high = self._bounds
            quantity = self.case.data["monitor"]["quantity"]
            values = self.equation.diagnostics(self.state, self.dt)[quantity]
            outside = running & finite & ((values < low) | (values > high))
            failed |= {row: f"{quantity} {values[row]:.4g} outside [{low:.4g}, {high:.4g}]"
                       for row in np.flatnonzero(outside)}
        return dict(sorted(failed.items()))

    def quarantine(self, failed):
        """Stop members ``{row: reason}``: from now on their state, stepper history and held
        tendencies are zero (so they cost nothing and stay finite), their outputs are
        masked and :attr:`member_status` says why.  The other members' results do not change."""
        rows = np.zeros(len(self.members), bool)
        rows[list(failed)] = True
        self.quarantined |= rows
        for row, reason in failed.items():
            self.member_status[row] = f"quarantined at step {self.step}: {reason}"
        self.stepper.zero_members(rows)
        for hook in self.hooks:
            if hook.callsite == "tendency":
                hook.held[rows[hook.rows]] = 0.0
            if hasattr(hook, "zero_rows"):
                hook.zero_rows(rows[hook.rows])
        if self._tendency is not None:
            self._tendency[rows] = 0.0
        self._hold_quarantined()

    def _hold_quarantined(self):
        if self.quarantined.any():
            self.state[self.quarantined] = 0.0

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

    def run(self, out_dir=None, progress=True, resume=False, force=False):
        """Run to the case's end, writing the run directory; returns the summary dict.

        Fields are written at step 0, every ``output.fields_every`` steps and at the end;
        diagnostics at step 0 and every ``output.diagnostics_every`` steps; the checkpoint
        ``checkpoint.npz`` every ``output.checkpoint_every`` steps, at the end, and when
        SIGTERM or SIGINT arrives (the run then stops with status ``interrupted``; a second
        SIGINT stops it at once).  ``resume`` continues the run directory from its
        checkpoint: records written after the checkpoint's step are dropped and the run
        goes on bit-identically.  ``ms_per_step`` leaves out the first step (JIT
        compilation) and includes output writing (None for a one-step run).

        Every ``monitor.every`` steps (and at each output) members whose state is not
        finite or whose ``monitor.quantity`` leaves the monitor's bounds fail: with
        ``monitor.on_failure = "quarantine"`` they are quarantined (:meth:`quarantine`)
        and the others go on; with ``"abort"`` the run stops.  Summary ``status``: ``ok``,
        ``quarantined`` (some members), ``failed`` (aborted, or every member
        quarantined), ``interrupted`` or ``write failed``.

        The directory is locked while the run writes it (:class:`hybridsolver.rundir.RunLock`);
        before step 0 it must be writable and, unless ``force``, its disk must have room
        for the estimated outputs (CaseError otherwise).  A write that fails (no space, I/O
        error) raises :class:`hybridsolver.output.WriteError` with ``run_dir`` set; the
        last complete checkpoint stays, and ``resume`` continues from it.
        """
        run_dir = self.case.run_dir(out_dir)
        with rundir.RunLock(run_dir):
            try:
                return self._run(run_dir, progress, resume, force)
            except WriteError as exc:
                exc.run_dir = run_dir
                raise

    def _run(self, run_dir, progress, resume, force):
        """:meth:`run` in the locked, writable ``run_dir``."""
        out = self.case.data["output"]
        checkpoint = os.path.join(run_dir, CHECKPOINT)
        if resume:
            rundir.check_resumable(run_dir, self.case.data)
            self.load_checkpoint(checkpoint)  # starts the hooks: artifacts' dry runs fail before anything is written
        else:
            self.start_hooks()
        rundir.check_space(run_dir, rundir.estimate_bytes(self, run_dir, sum(
            a.nbytes for a in checkpoint_arrays(self).values()), resume), force)
        if resume:
            writer = RunWriter(run_dir, self, resume=True)
        else:
            writer = RunWriter(run_dir, self)
            writer.write_fields(self.step, self.time, self.output_fields())
            if out["diagnostics_every"]:
                writer.write_diagnostics(self.step, self.time, self.diagnostics())
        summary = {"case": self.case.path, "run_dir": run_dir, "equation": self.equation.name,
                   "grid": list(self.grid.shape), "scheme": self.case.data["time"]["scheme"],
                   "dt": self.dt, "members": self.members, "seed": self.seed,
                   "fft_threads": self.equation.transforms.threads if self.equation.transforms else None,
                   "resumed_from_step": self.step if resume else None}
        ended = None
        failing = None  # the exception a failing loop raises (the outputs then are written on a best-effort basis)
        first_start = time.perf_counter()
        timing = [self.step, first_start]  # first timed step and its start (after JIT compilation)
        try:
            with _stop_on_signals(self):
                ended = self._loop(writer, checkpoint, progress, timing)
        except WriteError as exc:
            ended, failing = "write failed", exc
            raise
        except BaseException as exc:
            ended, failing = "interrupted", exc
            raise
        finally:
            self.finish_hooks()
            errors = []
            try:
                writer.flush()
            except WriteError as exc:
                errors.append(exc)
                ended = "write failed"
            now = time.perf_counter()
            timed = self.step - timing[0]
            ms = 1e3 * (now - timing[1]) / timed if timed else None
            summary.update({
                "status": ended or ("quarantined" if self.quarantined.any() else "ok"),
                "member_status": dict(zip(map(str, self.members), self.member_status)),
                "quarantined": [m for m, q in zip(self.members, self.quarantined) if q],
                "final_step": self.step, "final_time": self.time, "wall_seconds": now - first_start,
                "ms_per_step": ms, "ms_per_member_step": ms / len(self.members) if timed else None,
                "plugins": self.hook_report(now - first_start), "transfers": self.transfer_report(),
            })
            if self._signal is not None:
                summary["signal"] = signal.Signals(self._signal).name
            if not errors:
                summary |= self._wake_summary(writer.diagnostics_path)
            try:
                writer.write_summary(summary)
            except WriteError as exc:
                errors.append(exc)
            if errors and failing is None:
                raise errors[0]
        return summary

    def _wake_summary(self, path):
        """{"wake": Strouhal number, mean drag coefficient, lift amplitude per member over the
        second half of the diagnostics} for a flow past a body, else {}."""
        penalization = getattr(self.equation, "penalization", None)
        if penalization is None or not penalization.body or not self.case.data["output"]["diagnostics_every"]:
            return {}
        time_, series = read_series(path, ("drag_coefficient", "lift_coefficient"))
        if len(time_) < 4:
            return {}
        return {"wake": wake_statistics(time_, series["drag_coefficient"], series["lift_coefficient"],
                                        penalization.diameter, penalization.velocity)}

    def _loop(self, writer, checkpoint, progress, timing):
        """The step loop of :meth:`run`, from the current step to the end: advances between
        output, monitor and checkpoint steps and does what is due there.  Returns
        ``"interrupted"`` when a signal stopped it, ``"failed"`` when members failed and
        the run cannot go on, else None."""
        d = self.case.data
        out, monitor = d["output"], d["monitor"]
        fields_every, diag_every, ck_every = out["fields_every"], out["diagnostics_every"], out["checkpoint_every"]
        end = self.total_steps
        bar = None  # made after the first step (JIT compilation), so its rate and ETA are real
        ended = None
        while self.step < end:
            if bar is None and self.step > timing[0]:
                timing[:] = [self.step, time.perf_counter()]
                bar = tqdm(total=end, initial=self.step, unit="step", disable=not progress, dynamic_ncols=True)
            stops = [end] + [(self.step // every + 1) * every
                             for every in (fields_every, diag_every, ck_every, monitor["every"]) if every]
            before = self.step
            self._advance(before + 1 if bar is None else min(stops), min(stops))
            if bar is not None:
                bar.update(self.step - before)
                rate = 1e3 * (time.perf_counter() - timing[1]) / (self.step - timing[0])
                bar.set_postfix_str(f"{rate:.3f} ms/step", refresh=False)
            due = {"diagnostics": diag_every and self.step % diag_every == 0,
                   "fields": (fields_every and self.step % fields_every == 0) or self.step == end,
                   "checkpoint": self._signal is not None or self.step == end
                   or (ck_every and self.step % ck_every == 0)}
            # monitors at fixed steps (and before writing), so a resumed run checks where the first did
            check = any(due.values()) or self.step % monitor["every"] == 0
            failed = self.failed_members() if check else {}
            if failed and monitor["on_failure"] == "abort":
                for row in range(len(self.members)):
                    self.member_status[row] = (f"{failed[row]} by step {self.step}" if row in failed
                                               else f"aborted at step {self.step}")
                writer.write_diagnostics(self.step, self.time, self.diagnostics())
                ended = "failed"
                break
            if failed:
                self.quarantine(failed)
                if self.quarantined.all():
                    ended = "failed"
                    break
            if due["diagnostics"]:
                writer.write_diagnostics(self.step, self.time, self.diagnostics())
            if due["fields"]:
                writer.write_fields(self.step, self.time, self.output_fields())
            if due["checkpoint"]:
                writer.flush()
                self.save_checkpoint(checkpoint)
            if self._signal is not None:
                ended = "interrupted"
                break
        if bar is not None:
            bar.close()
        return ended




@contextlib.contextmanager
def _stop_on_signals(sim):
    """While the block runs, SIGTERM and SIGINT set ``sim._signal`` (the step loop then
    checkpoints and stops) instead of ending the process; a second signal raises
    KeyboardInterrupt.  Only in the main thread (signal handlers can only be set there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if sim._signal is not None:
            raise KeyboardInterrupt
        sim._signal = signum

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
