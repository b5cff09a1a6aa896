"""Monitors and quarantine: the bounds of ``monitor.quantity``, the members that fail them
or turn non-finite, and stopping those members while the others go on.  A mixin of
:class:`hybridsolver.simulation.Simulation`."""
import os

import numpy as np

from ..case import CaseError, resolve_path
from ..output import read_diagnostic
from ..stability import reference_band


class Monitoring:
    """Member monitoring and quarantine of a :class:`~hybridsolver.simulation.Simulation`."""

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
