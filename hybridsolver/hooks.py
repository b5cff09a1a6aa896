"""Hooks: objects the step loop calls on a schedule at one of four callsites.

Callsites (DESIGN.md section 5), in the order they act around the step from ``s`` to
``s + 1`` (``Simulation.advance``):

1. ``tendency`` hooks due at ``s`` read state ``s`` and return an additive tendency
   (spectral, shape of their rows of the state).  It is *held*: used for every step
   until the hook's next call, optionally plus fresh white noise each step
   (``hold_noise``).  The held tendencies of all tendency hooks are summed, in hook
   order, and added to the equation's explicit term at every stage of the stepper.
2. A ``replace`` hook due at ``s`` returns state ``s + k`` (``k = every``) and the
   solver takes no step in between; when fewer than ``k`` steps remain in the
   current ``advance`` the solver takes them instead.  Otherwise the solver steps
   (stepper, state filter, stochastic forcing).
3. ``post_step`` hooks due at ``s + 1`` read the new state and the previous one and
   return the state that replaces the new one.
4. ``observe`` hooks due at ``s + 1`` read the state.  They are also called on the
   initial state, at the first ``advance`` of a simulation, when it is due.

Within a callsite hooks run in the order they were added (case ``[[plugins]]``
first).  Each hook sees only its rows of the ensemble (``members`` selector), as a
view of the state: spectral, complex ``(rows, ny, nx//2+1)`` (``(rows, n//2+1)`` for
spectral ``kdv``), or physical, real ``(rows, [ny,] nx)``, for finite-difference
equations; observe and tendency hooks get a read-only view.
"""
import math
import time

import numpy as np

from .case import CaseError

CALLSITES = ("tendency", "replace", "post_step", "observe")


class Schedule:
    """When a hook is due: every ``every`` steps from step ``offset``, or every
    ``interval`` time units from time ``offset``.

    A time-interval schedule is due at the first step on or after each target time
    ``offset + n interval`` (``n = 0, 1, ...``), with a tolerance of 1e-9 intervals;
    it is stateless, so it gives the same steps after a restart.
    """

    def __init__(self, every=None, interval=None, offset=0):
        if (every is None) == (interval is None):
            raise ValueError("give exactly one of every and interval")
        if every is not None and (int(every) != every or every < 1 or int(offset) != offset or offset < 0):
            raise ValueError(f"every must be an integer >= 1 and offset an integer >= 0, got {every}, {offset}")
        if interval is not None and not interval > 0:
            raise ValueError(f"interval must be > 0, got {interval}")
        self.every = None if every is None else int(every)
        self.interval = None if interval is None else float(interval)
        self.offset = int(offset) if every is not None else float(offset)

    def _targets_reached(self, step, dt):
        """How many target times ``offset + n interval`` are <= the time of ``step``."""
        if step < 0:
            return 0
        x = (step * dt - self.offset) / self.interval + 1e-9
        return math.floor(x) + 1 if x >= 0 else 0

    def due(self, step, dt):
        """True if the hook is called at ``step`` (steps of length ``dt``)."""
        if self.every is not None:
            return step >= self.offset and (step - self.offset) % self.every == 0
        return self._targets_reached(step, dt) > self._targets_reached(step - 1, dt)

    def __repr__(self):
        unit = f"every={self.every}" if self.every is not None else f"interval={self.interval}"
        return f"Schedule({unit}, offset={self.offset})"


class Hook:
    """Base class for hooks; subclass it, set ``callsite`` and override ``__call__``.

    ``__call__(sim, state)`` for ``observe`` and ``tendency`` (return the tendency,
    complex like ``state``), ``replace`` (return the state ``every`` steps later) and
    ``__call__(sim, state, previous)`` for ``post_step`` (return the new state).
    ``start(sim)`` is called before the first step and ``finish(sim)`` when a run
    ends.  ``members`` is None (all) or a ``"a:b"`` selector of member ids.
    ``hold_noise`` (tendency hooks) is the standard deviation, per grid point in
    physical space, of the white noise added to the held tendency at every step.
    ``name`` keys the hook's noise streams and figures; by default the class name
    (numbered when taken).  ``start`` and ``stop`` (model time; default the run's start,
    ``time.start``, and its end) are the hook's window: it acts only at steps whose time t has
    start <= t < stop (to 1e-9 steps), and its schedule counts from the window's first
    step (``offset`` steps or time units after it).  A tendency hook's held tendency is
    dropped when its window closes.
    """

    callsite = "observe"

    def __init__(self, every=1, interval=None, offset=0, members=None, hold_noise=0.0, name=None, start=0.0,
                 stop=None):
        if self.callsite not in CALLSITES:
            raise ValueError(f"{type(self).__name__}.callsite: {self.callsite!r} is not one of {CALLSITES}")
        if interval is not None:
            every = None
        self.schedule = Schedule(every, interval, offset)
        if self.callsite == "replace" and self.schedule.every is None:
            raise ValueError("a replace hook needs an 'every' schedule (it advances that many steps)")
        if hold_noise and self.callsite != "tendency":
            raise ValueError("hold_noise applies to tendency hooks only")
        if not (start >= 0 and (stop is None or stop > start)):
            raise ValueError(f"the window needs 0 <= start < stop, got start = {start}, stop = {stop}")
        self.window = (float(start), None if stop is None else float(stop))
        self.members = members
        self.hold_noise = float(hold_noise)
        self.name = name  # None: the simulation names it after its class
        self.label = None  # None: the simulation calls it "hook 'NAME'"

    def bind_window(self, dt, t0=0.0):
        """Turn the window (model times) into steps of length ``dt`` from step 0 at time
        ``t0`` (:attr:`window_steps`: first step, and the first step after it, None for
        none) and start the schedule at its first step.  Done once, by
        :meth:`hybridsolver.Simulation.add_hook`."""
        start, stop = self.window
        first = max(0, math.ceil((start - t0) / dt - 1e-9))
        self.window_steps = (first, None if stop is None else max(0, math.ceil((stop - t0) / dt - 1e-9)))
        self.schedule.offset += first if self.schedule.every is not None else first * dt

    def active(self, step):
        """True if ``step`` lies in the hook's window."""
        first, stop = self.window_steps
        return step >= first and (stop is None or step < stop)

    def due(self, step, dt):
        """True if the hook acts at ``step``: in its window and due by its schedule."""
        return self.active(step) and self.schedule.due(step, dt)

    def start(self, sim):
        """Called once before the first step."""

    def finish(self, sim):
        """Called once when a run ends (also after a failure)."""

    def __call__(self, sim, state, previous=None):
        raise NotImplementedError


def member_rows(selector, members):
    """Row slice of the ensemble for a ``"a:b"`` member-id selector (None: all rows).

    ``members`` is the simulation's list of member ids (consecutive).  Raises
    ValueError when the selector is malformed or selects no member.
    """
    if selector is None:
        return slice(0, len(members))
    text = str(selector)
    parts = text.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        lo = int(parts[0]) if parts[0].strip() else members[0]
        hi = int(parts[1]) if parts[1].strip() else members[-1] + 1
    except ValueError:
        raise ValueError(f"expected 'first:stop' member ids, got {text!r}") from None
    first = max(lo, members[0]) - members[0]
    stop = min(hi, members[-1] + 1) - members[0]
    if stop <= first:
        raise ValueError(f"{text!r} selects none of the members {members[0]}..{members[-1]}")
    return slice(first, stop)


class HookStats:
    """Per-hook accounting: calls, seconds inside the hook, bytes moved host<->GPU and host
    round trips (a module's output copied back into the host's numpy state)."""

    def __init__(self):
        self.calls = 0
        self.seconds = 0.0
        self.bytes_to_device = 0
        self.bytes_from_device = 0
        self.round_trips = 0

    def report(self, wall_seconds):
        """A dict for ``summary.json``; ``share`` is the fraction of ``wall_seconds``."""
        return {"calls": self.calls, "total_ms": 1e3 * self.seconds,
                "mean_ms": 1e3 * self.seconds / self.calls if self.calls else None,
                "share": self.seconds / wall_seconds if wall_seconds else None,
                "bytes_to_device": self.bytes_to_device, "bytes_from_device": self.bytes_from_device,
                "host_round_trips": self.round_trips}


def timed_call(hook, *args, call=None):
    """Call ``hook(*args)`` (or ``call(*args)``, one of the hook's methods), adding the call
    and its duration to ``hook.stats``."""
    start = time.perf_counter()
    out = (call or hook)(*args)
    hook.stats.calls += 1
    hook.stats.seconds += time.perf_counter() - start
    return out


def read_only(view):
    """``view`` with writing disabled (the underlying array stays writable)."""
    view = view.view()
    view.flags.writeable = False
    return view


def check_returned(hook, value, expected_shape, step):
    """The array a hook returned, checked for shape and finiteness (ValueError otherwise)."""
    if not isinstance(value, np.ndarray) or value.shape != expected_shape:
        got = value.shape if isinstance(value, np.ndarray) else type(value).__name__
        raise ValueError(f"hook {hook.name!r} ({hook.callsite}) returned {got} at step {step}, "
                         f"expected an array of shape {expected_shape}")
    return value


def check_replace_overlap(hooks, members, dt, t0=0.0):
    """CaseError naming both hooks when two replace ``hooks`` cover one member at one step
    (their member rows and their windows, steps of length ``dt`` from time ``t0``, overlap;
    rows and :attr:`Hook.window_steps` as the simulation set them)."""
    for i, a in enumerate(hooks):
        for b in hooks[i + 1:]:
            lo, hi = max(a.rows.start, b.rows.start), min(a.rows.stop, b.rows.stop)
            first = max(a.window_steps[0], b.window_steps[0])
            stops = [s for s in (a.window_steps[1], b.window_steps[1]) if s is not None]
            stop = min(stops) if stops else None
            if lo < hi and (stop is None or first < stop):
                until = f"t < {t0 + stop * dt:g}" if stop is not None else "the end"
                raise CaseError(f"{a.label} and {b.label} both replace members {members[lo]}..{members[hi - 1]} "
                                f"from t = {t0 + first * dt:g} to {until}: a member takes one replace plugin at a "
                                "time (give them disjoint members or start/stop windows)")
