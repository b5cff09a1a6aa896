"""The latent-SDE emulator ensemble against the solver it replaces, measured in one process.

    python benchmarks/bench_latent_sde.py [--json results.json] [--members 64] [--calls 50]
                                          [--snapshots 5] [--emulator latent_sde_kdv_eta0] [--threads 2]

Both produce ``--members`` KdV trajectories snapshot by snapshot (1e-3 apart, the data's
spacing): the emulator (``cases/kdv_latent_sde.toml``: one ``replace`` call per snapshot
for all members, 4 Euler-Maruyama substeps) and our finite-difference solver
(``cases/kdv.toml``: RK4 at dt = 1e-3 / 64, 64 steps per snapshot, the same members).
Printed: seconds per snapshot interval of each (the emulator over ``--calls`` calls,
the solver over ``--snapshots`` intervals, after one interval of warm-up for the JIT
and the artifact's dry run), the seconds of the test horizon t in [0, 1] (1000
intervals) and the speed-up solver / emulator.
"""
import argparse
import os
import time

import torch

from hybridsolver import Simulation
from timing import write_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INTERVALS = 1000  # snapshot intervals of the test horizon, t in [0, 1]


def seconds_per_interval(sim, steps_per_interval, intervals):
    """Wall seconds per snapshot interval of ``sim``, after one interval of warm-up."""
    sim.advance(steps_per_interval)
    started = time.perf_counter()
    sim.advance(steps_per_interval * intervals)
    return (time.perf_counter() - started) / intervals


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None)
    parser.add_argument("--members", type=int, default=64)
    parser.add_argument("--calls", type=int, default=50, help="emulator calls timed")
    parser.add_argument("--snapshots", type=int, default=5, help="solver snapshot intervals timed")
    parser.add_argument("--emulator", default="latent_sde_kdv_eta0", help="registered name or path of the artifact")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    members = {"ensemble.members": args.members}
    emulator = Simulation.from_case(os.path.join(ROOT, "cases", "kdv_latent_sde.toml"),
                                    members | {"plugins.0.path": args.emulator})
    solver = Simulation.from_case(os.path.join(ROOT, "cases", "kdv.toml"), members)
    per_snapshot = round(1e-3 / solver.dt)
    emulated = seconds_per_interval(emulator, 1, args.calls)
    solved = seconds_per_interval(solver, per_snapshot, args.snapshots)
    results = {"members": args.members, "threads": args.threads, "emulator": args.emulator,
               "emulator_s_per_snapshot": emulated, "solver_s_per_snapshot": solved,
               "solver_steps_per_snapshot": per_snapshot, "emulator_s_horizon": INTERVALS * emulated,
               "solver_s_horizon": INTERVALS * solved, "speedup": solved / emulated}
    print(f"{args.members} members, t in [0, 1] ({INTERVALS} snapshot intervals):")
    print(f"  emulator ({args.emulator}): {1e3 * emulated:.1f} ms per interval, {INTERVALS * emulated:.1f} s")
    print(f"  FD solver (RK4, {per_snapshot} steps per interval): {1e3 * solved:.1f} ms per interval, "
          f"{INTERVALS * solved:.1f} s")
    print(f"  speed-up solver / emulator: {solved / emulated:.1f}x")
    write_json(results, args.json)


if __name__ == "__main__":
    main()
