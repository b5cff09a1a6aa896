"""Speed of flow past a cylinder (navier_stokes2d with a penalized body and a sponge), as
ratios measured in one process.

    python benchmarks/bench_cylinder.py [--repeats 5] [--strouhal 0.19] [--json results.json]

On cases/cylinder_re160.toml (128 x 1152, cn_rk4, dt 0.002):

1. one member: ms/step against the time of the FFTs it does (5 stages x (2 inverse + 2
   forward) for the advection and as many for the relaxation after each stage: 40), timed
   back to back on the step's own plans (median of the paired ratios);
2. the wall time of one shedding period, D / (St U) / dt steps at that speed (``--strouhal``,
   default 0.19);
3. 16 members: member-steps per second against one member's.

Step times are minima over ``--repeats`` repetitions (noise only adds time).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_ns2d import against_ffts  # noqa: E402

from hybridsolver import Simulation  # noqa: E402
from timing import seconds, write_json  # noqa: E402

CASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "cases", "cylinder_re160.toml")


def simulation(members):
    sim = Simulation.from_case(CASE, {"ensemble.members": members})
    sim.advance(3)  # JIT compilation and FFT planning stay out of the timings
    return sim


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--strouhal", type=float, default=0.19)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    one = simulation(1)
    relaxations = one.stepper.evaluations if one.stepper.stage_relaxation else 1
    ffts = 4 * one.stepper.evaluations + 4 * relaxations
    step_ms, fft_ms, ratio = against_ffts(one, ffts, args.repeats, args.steps)
    penalization = one.equation.penalization
    period_steps = penalization.diameter / (args.strouhal * penalization.velocity) / one.dt
    ensemble = simulation(16)
    ensemble_ms = min(1e3 * seconds(lambda: ensemble.advance(1), max(2, args.steps // 4)) for _ in range(args.repeats))
    results = {"grid": list(one.grid.shape), "ms_per_step": step_ms, "ms_per_fft": fft_ms, "ffts": ffts,
               "step_over_ffts": ratio, "period_steps": period_steps,
               "period_seconds": period_steps * step_ms / 1e3,
               "ms_per_member_step_16": ensemble_ms / 16, "ensemble_speedup": 16 * step_ms / ensemble_ms}
    print(f"cylinder Re 160, {one.grid.shape[0]} x {one.grid.shape[1]}, 1 member: {step_ms:.2f} ms/step, "
          f"{ffts} FFTs of {fft_ms:.3f} ms: {ratio:.2f}x the FFT floor")
    print(f"one shedding period (St = {args.strouhal}): {period_steps:.0f} steps, "
          f"{results['period_seconds']:.1f} s")
    print(f"16 members: {ensemble_ms / 16:.2f} ms/member-step, {results['ensemble_speedup']:.2f}x the member-steps/s "
          "of one member")
    write_json(results, args.json)


if __name__ == "__main__":
    main()
