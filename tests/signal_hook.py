"""An observe hook that sends this process a signal at a given step (tests of runs
killed or stopped mid-way: ``test_checkpoint``, ``test_quarantine``)."""
import os

from hybridsolver.hooks import Hook


class SignalAt(Hook):
    """Sends this process ``signum`` when the run reaches ``step``."""

    callsite = "observe"

    def __init__(self, step, signum):
        super().__init__(every=step)  # due at `step` only, so device-resident rollouts run up to it
        self.at, self.signum = step, signum

    def __call__(self, sim, state):
        if sim.step == self.at:
            os.kill(os.getpid(), self.signum)
