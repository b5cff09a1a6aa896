"""Hooks in the step loop: adding and starting them, the held tendency of tendency hooks,
and one host iteration with replace, post-step and observe hooks (the order of
:mod:`hybridsolver.hooks`).  A mixin of :class:`hybridsolver.simulation.Simulation`."""
import numpy as np

from .. import fft, rng
from ..case import CaseError
from ..hooks import CALLSITES, HookStats, check_replace_overlap, check_returned, member_rows, read_only, timed_call
from ..plugin.resident import ResidentRollout


class HookedSteps:
    """The hooks of a :class:`~hybridsolver.simulation.Simulation` and the steps they act in."""

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
