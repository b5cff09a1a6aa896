"""The time-mean velocity around a penalized cylinder: how fast the flow the body meets is.

    python examples/cylinder_mean_flow.py cases/cylinder_re100.toml --start 60 --end 110
    python examples/cylinder_mean_flow.py cases/cylinder_re100.toml --start 60 --end 110 \\
        --set grid.shape=[320,512] --set grid.length=[20.0,32.0] --set equation.obstacle.center=[8.0,10.0]

Runs member 0 of the case (its ``--set`` options applied) to ``--start`` without outputs,
then to ``--end`` averaging the velocity every ``--every`` steps, and prints the
Strouhal number and mean drag coefficient over that window, then, at stations x - x_c
(in diameters D) upstream, beside and behind the body, the mean u at the box's y edge
(the farthest point from the body, where a confined or periodic box's blockage shows),
at y_c +- 3 D and on the centreline.  Velocities are in units of the inflow U.
"""
import argparse

import numpy as np

from hybridsolver.equations.obstacle import strouhal_number
from hybridsolver.overrides import parse_set_options
from hybridsolver.simulation import Simulation

STATIONS = (-6.0, -4.0, -2.0, -1.0, 0.0, 2.0, 5.0, 10.0, 15.0)  # x - x_c in diameters


def mean_flow(sim, start, end, every):
    """Run ``sim`` to model time ``start``, then to ``end`` averaging member 0's velocity
    every ``every`` steps.  Returns (u_mean (ny, nx), times (T,), drag (T,), lift (T,))."""
    eq = sim.equation
    sim.advance(max(0, int(round((start - sim.time) / sim.dt))))
    total = np.zeros(sim.grid.shape)
    times, drag, lift = [], [], []
    while sim.time < end - 0.5 * sim.dt:
        sim.advance(every)
        u, _ = eq.velocity(sim.state)
        total += u[0]
        coefficients = eq.penalization.coefficients()
        times.append(sim.time)
        drag.append(coefficients["drag_coefficient"][0])
        lift.append(coefficients["lift_coefficient"][0])
    return total / len(times), np.array(times), np.array(drag), np.array(lift)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", help="a navier_stokes2d case with equation.obstacle and equation.inflow")
    parser.add_argument("--start", type=float, default=60.0, help="model time the average starts")
    parser.add_argument("--end", type=float, default=110.0, help="model time the average ends")
    parser.add_argument("--every", type=int, default=5, help="steps between samples")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a case key")
    args = parser.parse_args(argv)
    overrides = parse_set_options(args.set) | {"ensemble.members": 1}
    sim = Simulation.from_case(args.case, overrides)
    obstacle = sim.case.data["equation"]["obstacle"]
    velocity, diameter = sim.equation.penalization.velocity, obstacle["diameter"]
    (xc, yc) = obstacle["center"]
    u, times, drag, lift = mean_flow(sim, args.start, args.end, args.every)
    st = strouhal_number(times, lift[None], diameter, velocity, skip=0.0)[0]
    print(f"t in [{args.start:g}, {args.end:g}]: St {st:.4f}, mean C_D {drag.mean():.4f}")
    X, Y = sim.grid.mesh()
    x, y = X[0], Y[:, 0]
    rows = {"y edge": 0, "y_c+3D": np.argmin(abs(y - yc - 3 * diameter)),
            "y_c-3D": np.argmin(abs(y - yc + 3 * diameter)), "centreline": np.argmin(abs(y - yc))}
    print("(x-x_c)/D  " + "  ".join(f"{name:>10}" for name in rows))
    for station in STATIONS:
        j = np.argmin(abs(x - xc - station * diameter))
        print(f"{(x[j] - xc) / diameter:+9.2f}  " + "  ".join(f"{u[i, j] / velocity:10.4f}" for i in rows.values()))


if __name__ == "__main__":
    main()
