"""The step loop: ensemble state, clock, stochastic forcing, outputs.

One step is, in order: the stepper's update (``time.scheme``), the state filter
(``dealias = "exponential"``), then the stochastic forcing increment drawn from
each member's stream at the index of the step (0 for the step from 0 to 1).
"""
import os
import time

import numpy as np
from tqdm import tqdm

from . import fft
from .case import CaseError, load_case
from .equations import EQUATIONS
from .grid import Grid
from .initial_conditions import make_initial
from .output import RunWriter
from .steppers import make_stepper, multiply


class Simulation:
    """An ensemble of ``ensemble.members`` runs of one case, stepped together.

    ``state`` is the spectral state, complex ``(M, ny, nx//2+1)``; ``step`` counts steps
    taken and ``time = step * dt``.
    """

    def __init__(self, case):
        self.case = case
        d = case.data
        g = d["grid"]
        self.grid = Grid(g["shape"], g["length"], g["dealias"], d["equation"]["filterfac"])
        ens = d["ensemble"]
        self.seed = ens["seed"]
        self.members = list(range(ens["first_member"], ens["first_member"] + ens["members"]))
        self.equation = EQUATIONS[d["equation"]["name"]](self.grid, d["equation"], self.members, self.seed)
        self.dt = d["time"]["dt"]
        self.total_steps = case.steps
        self.stepper = make_stepper(d["time"]["scheme"], self.equation, self.dt)
        self.state = fft.zeros(self.equation.state_shape, np.complex128)
        self.step = 0
        self.set_initial({self.equation.fields[0]: make_initial(d["initial_condition"], self.grid, self.seed,
                                                               self.members)})

    @classmethod
    def from_case(cls, source, overrides=None):
        """Build from a case file path or raw dict, with ``{"a.b": value}`` overrides."""
        return cls(load_case(source, overrides))

    @property
    def time(self):
        return self.step * self.dt

    def set_initial(self, fields):
        """Set the state from physical fields, each ``(ny, nx)`` or ``(M, ny, nx)``.

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
            if arr.shape == self.grid.shape:
                arr = np.broadcast_to(arr, (M,) + arr.shape)
            if arr.shape != (M,) + self.grid.shape:
                raise CaseError(f"set_initial: field '{name}' has shape {arr.shape}, expected "
                                f"{self.grid.shape} or {(M,) + self.grid.shape}")
            shaped[name] = arr
        self.state[...] = self.equation.from_fields(shaped)
        if hasattr(self.stepper, "reset"):
            self.stepper.reset()

    def advance(self, steps):
        """Take ``steps`` steps (no outputs)."""
        state_filter = self.equation.state_filter
        for _ in range(int(steps)):
            self.stepper.step(self.state)
            if state_filter is not None:
                multiply(self.state, state_filter)
            self.equation.add_noise(self.state, self.step, self.dt)
            self.step += 1

    def fields(self):
        """Physical fields, ``{name: (M, ny, nx) numpy array}``."""
        return self.equation.to_fields(self.state)

    def diagnostics(self):
        """Per-member scalars (M,) and spectra (M, nshell) of the current state."""
        return self.equation.diagnostics(self.state, self.dt) | self.equation.spectra(self.state)

    def finite_members(self):
        """Boolean (M,): members whose state is all finite."""
        return np.isfinite(self.state).all(axis=tuple(range(1, self.state.ndim)))

    def run(self, out_dir=None, progress=True):
        """Run to the case's end, writing the run directory; returns the summary dict.

        ``ms_per_step`` leaves out the first step (JIT compilation) and includes output
        writing (None for a one-step run).  Fields are written at step 0, every
        ``output.fields_every`` steps and at the end; diagnostics at step 0 and every
        ``output.diagnostics_every`` steps.  A member whose state stops being finite
        stops the run (status ``non-finite by step N``).
        """
        out = self.case.data["output"]
        run_dir = out_dir or out.get("dir") or os.path.join("runs", self.case.name)
        writer = RunWriter(run_dir, self)
        fields_every, diag_every = out["fields_every"], out["diagnostics_every"]
        end = self.total_steps
        summary = {"case": self.case.path, "run_dir": run_dir, "equation": self.equation.name,
                   "grid": list(self.grid.shape), "scheme": self.case.data["time"]["scheme"],
                   "dt": self.dt, "members": self.members, "seed": self.seed,
                   "fft_threads": self.equation.transforms.threads, "plugins": {}}
        writer.write_fields(self.step, self.time, self.fields())
        if diag_every:
            writer.write_diagnostics(self.step, self.time, self.diagnostics())
        status = ["ok"] * len(self.members)
        bar = None  # made after the first step (JIT compilation), so its rate and ETA are real
        run_start = self.step
        first_start = time.perf_counter()
        start_step, start = self.step, first_start
        try:
            while self.step < end:
                if self.step > start_step and bar is None:  # time steps after the first (JIT compilation)
                    start_step, start = self.step, time.perf_counter()
                    bar = tqdm(total=end - run_start, initial=self.step - run_start, unit="step",
                               disable=not progress, dynamic_ncols=True)
                stops = [end]
                for every in (fields_every, diag_every):
                    if every:
                        stops.append((self.step // every + 1) * every)
                chunk = 1 if bar is None else min(stops) - self.step
                self.advance(chunk)
                if bar is not None:
                    bar.update(chunk)
                    elapsed = time.perf_counter() - start
                    bar.set_postfix_str(f"{1e3 * elapsed / (self.step - start_step):.3f} ms/step", refresh=False)
                finite = self.finite_members()
                if diag_every and self.step % diag_every == 0 or not finite.all():
                    writer.write_diagnostics(self.step, self.time, self.diagnostics())
                if not finite.all():
                    status = ["ok" if f else f"non-finite by step {self.step}" for f in finite]
                    break
                if (fields_every and self.step % fields_every == 0) or self.step == end:
                    writer.write_fields(self.step, self.time, self.fields())
        except BaseException:
            status = ["interrupted"] * len(self.members)
            raise
        finally:
            if bar is not None:
                bar.close()
            writer.flush()
            now = time.perf_counter()
            timed = self.step - start_step
            ms = 1e3 * (now - start) / timed if timed else None
            summary.update({
                "status": "ok" if all(s == "ok" for s in status) else "failed",
                "member_status": dict(zip(map(str, self.members), status)),
                "final_step": self.step, "final_time": self.time, "wall_seconds": now - first_start,
                "ms_per_step": ms, "ms_per_member_step": ms / len(self.members) if timed else None,
            })
            writer.write_summary(summary)
        return summary
