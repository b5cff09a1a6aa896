"""A run: the run directory, the loop that writes outputs, checks monitors and checkpoints
between steps, and the summary.  A mixin of :class:`hybridsolver.simulation.Simulation`."""
import os
import signal
import time

from tqdm import tqdm

from .. import rundir
from ..checkpoint import checkpoint_arrays
from ..equations.obstacle import wake_statistics
from ..output import RunWriter, WriteError, read_series
from ..rundir import CHECKPOINT
from .signals import stop_on_signals


class RunLoop:
    """:meth:`run` of a :class:`~hybridsolver.simulation.Simulation`."""

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
            with stop_on_signals(self):
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
