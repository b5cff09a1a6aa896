"""The latent-SDE emulator ensemble against the solver it replaces, measured in one process.

    python benchmarks/bench_latent_sde.py [--problem kdv] [--json results.json] [--members 64]
                                          [--calls 20] [--intervals 2] [--emulator NAME] [--threads 2]
                                          [--workers W]

Both produce ``--members`` trajectories of ``--problem`` over the test horizon t in [0, 1]
with the fields of ``cases/<problem>_latent_sde.toml``'s output times (every 1e-2, 100
intervals): the emulator as that case runs it (one ``replace`` call per output time for
all members: ten Euler-Maruyama substeps of the data's snapshot step 1e-3, one decoding)
and our finite-difference solver on the data's case (``cases/kdv.toml``: RK4 at
dt = 1e-3 / 64, 640 steps per interval; ``cases/burgers2d.toml``: Heun at dt = 1e-4, 100
steps per interval; the same members).  The emulator is also timed with one call per data
snapshot (dt = 1e-3, one substep: the evaluation's way, 1000 decodings).  Printed:
seconds per output interval of each (the emulator over ``--calls`` calls, the solver
over ``--intervals`` intervals, after one interval of warm-up for the JIT and the
artifact's dry run), the seconds of the horizon and the speed-ups solver / emulator.
``--workers`` sets the emulator's ``plugins.0.workers`` (default: the case's).
"""
import argparse
import os
import time

import torch

from hybridsolver import Simulation
from timing import write_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HORIZON = 1.0  # the test trajectory's span
EMULATORS = {"kdv": "latent_sde_kdv", "burgers2d": "latent_sde_burgers2d_eta0"}  # the cases' defaults


def seconds_per_interval(sim, steps_per_interval, intervals):
    """Wall seconds per interval of ``steps_per_interval`` steps of ``sim``, after one
    interval of warm-up."""
    sim.advance(steps_per_interval)
    started = time.perf_counter()
    sim.advance(steps_per_interval * intervals)
    return (time.perf_counter() - started) / intervals


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None)
    parser.add_argument("--members", type=int, default=64)
    parser.add_argument("--calls", type=int, default=20, help="emulator calls timed")
    parser.add_argument("--intervals", type=int, default=2, help="solver output intervals timed")
    parser.add_argument("--problem", choices=sorted(EMULATORS), default="kdv")
    parser.add_argument("--emulator", default=None, help="registered name or path of the artifact "
                        "(default: the problem's case's)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=None, help="the emulator's plugin workers")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.emulator = args.emulator or EMULATORS[args.problem]
    case = os.path.join(ROOT, "cases", f"{args.problem}_latent_sde.toml")
    members = {"ensemble.members": args.members}
    plugin = {"plugins.0.path": args.emulator} | ({"plugins.0.workers": args.workers} if args.workers else {})
    emulator = Simulation.from_case(case, members | plugin)
    per_snapshot = Simulation.from_case(case, members | plugin | {"time.dt": 1e-3, "plugins.0.sampler.substeps": 1})
    solver = Simulation.from_case(os.path.join(ROOT, "cases", f"{args.problem}.toml"), members)
    interval = emulator.dt
    steps = round(interval / solver.dt)
    intervals = round(HORIZON / interval)
    emulated = seconds_per_interval(emulator, 1, args.calls)
    snapshots = round(interval / per_snapshot.dt)
    stepped = seconds_per_interval(per_snapshot, snapshots, max(1, args.calls // snapshots))
    solved = seconds_per_interval(solver, steps, args.intervals)
    results = {"problem": args.problem, "members": args.members, "threads": args.threads, "workers": args.workers,
               "emulator": args.emulator,
               "interval": interval, "intervals": intervals, "solver_steps_per_interval": steps,
               "emulator_s_per_interval": emulated, "emulator_per_snapshot_s_per_interval": stepped,
               "solver_s_per_interval": solved, "emulator_s_horizon": intervals * emulated,
               "solver_s_horizon": intervals * solved, "speedup": solved / emulated,
               "speedup_per_snapshot": solved / stepped}
    print(f"{args.problem}, {args.members} members, t in [0, {HORIZON:g}] "
          f"({intervals} output intervals of {interval:g}):")
    print(f"  emulator ({args.emulator}, one call per output time): {1e3 * emulated:.2f} ms per interval, "
          f"{intervals * emulated:.2f} s")
    print(f"  emulator, one call per data snapshot ({snapshots} per interval): {1e3 * stepped:.2f} ms per interval")
    print(f"  FD solver ({solver.case.data['time']['scheme']}, {steps} steps per interval): "
          f"{1e3 * solved:.1f} ms per interval, "
          f"{intervals * solved:.1f} s")
    print(f"  speed-up solver / emulator: {solved / emulated:.1f}x "
          f"(one call per data snapshot: {solved / stepped:.1f}x)")
    write_json(results, args.json)


if __name__ == "__main__":
    main()
