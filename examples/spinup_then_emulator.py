"""Chain a solver spin-up and an emulator: the solver runs to t_spin, then the emulator steps.

    python examples/spinup_then_emulator.py [--spin-steps 200] [--steps 300]

Uses ``cases/linear_decay64.toml`` (the linear part of 64^2 Navier-Stokes), whose shipped
reference emulator ``linear_decay`` advances 5 steps per call exactly.  The spun-up
fields are handed to a second simulation with ``set_initial``; the same chain runs from
a case file with a plugin window (``--set plugins.0.start=0.2``: the solver before, the
emulator after).  Printed: the emulated ensemble against the solver's continuation.
"""
import argparse
import os

import numpy as np

from hybridsolver import Simulation

CASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "cases", "linear_decay64.toml")


def main(argv=None):
    """Returns the relative difference of the emulated and the solved vorticity at the end."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spin-steps", type=int, default=200)
    parser.add_argument("--steps", type=int, default=300, help="steps after the spin-up (a multiple of 5)")
    args = parser.parse_args(argv)
    spin = Simulation.from_case(CASE, {"plugins": []})  # the solver alone
    spin.advance(args.spin_steps)
    start = spin.fields()

    emulated = Simulation.from_case(CASE, {"time.start": spin.time})  # the case's emulator plugin
    emulated.set_initial(start)
    emulated.advance(args.steps)
    spin.advance(args.steps)  # the solver's continuation
    w, reference = emulated.fields()["vorticity"], spin.fields()["vorticity"]
    difference = float(np.linalg.norm(w - reference) / np.linalg.norm(reference))
    calls = emulated.hook_report()["linear_decay"]["calls"]
    print(f"spin-up to t = {spin.time - args.steps * spin.dt:g} by the solver, then {calls} emulator calls to "
          f"t = {emulated.time:g}: relative difference to the solver {difference:.2e}")
    return difference


if __name__ == "__main__":
    main()
