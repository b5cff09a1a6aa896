"""A closure written as a Python hook: hyperviscosity -nu4 k^4 omega on the Kolmogorov flow.

    python examples/python_hook_closure.py [--steps 500] [--nu4 1e-6] [--every 5]

A tendency hook returns a tendency in the state's layout (spectral for navier_stokes2d,
``(rows, ny, nx//2+1)``); the host holds it between calls and adds it to the explicit
term at every stage.  Prototype a closure this way, then export it as a TorchScript
artifact (examples/export_own_closure.py) for batched inference and case files.
"""
import argparse
import os

from hybridsolver import Simulation
from hybridsolver.hooks import Hook

CASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "cases", "kolmogorov64.toml")


class HyperViscosity(Hook):
    """Tendency hook ``-nu4 |k|^4 omega_hat`` (spectral, like the state)."""

    callsite = "tendency"

    def __init__(self, nu4, **schedule):
        super().__init__(**schedule)
        self.nu4 = nu4

    def start(self, sim):
        self.k4 = sim.grid.k2 ** 2

    def __call__(self, sim, state):
        return -self.nu4 * self.k4 * state


def main(argv=None):
    """Run the case with and without the hook; returns {label: mean enstrophy at the end}."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default=CASE)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--nu4", type=float, default=1e-6)
    parser.add_argument("--every", type=int, default=5, help="steps between hook calls (held in between)")
    args = parser.parse_args(argv)
    enstrophy = {}
    for label, hooks in (("no closure", []), ("hyperviscosity", [HyperViscosity(args.nu4, every=args.every)])):
        sim = Simulation.from_case(args.case, {"time.steps": args.steps})
        for hook in hooks:
            sim.add_hook(hook)
        sim.advance(args.steps)
        enstrophy[label] = float(sim.diagnostics()["enstrophy"].mean())
        print(f"{label:>15}: mean enstrophy {enstrophy[label]:.4f} at t = {sim.time:g}")
    return enstrophy


if __name__ == "__main__":
    main()
