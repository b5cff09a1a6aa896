"""The HINE emulators against the DNS they replace, measured in one process.

    python benchmarks/bench_hine.py [--json results.json] [--members 64] [--calls 20] [--threads 2]
                                    [--models hine_l1 hine_l2 hine_l3 hine_history]

Each model steps ``--members`` members of ``cases/betaplane64_hine.toml`` (64², one
``replace`` call of all members per emulator step of 0.05, after a start-up call and 3
warm-up calls that TorchScript optimises); the DNS the data came from is
``cases/betaplane_jets256.toml`` on the 128² grid at dt = 1e-3 (50 steps per 0.05, the
CPU data's DNS; ``plugins/hine/generate.py``) and, for reference, its own 256² grid at dt =
2e-4 (250 steps), the same members.  Printed: ms per 0.05 of each and the speed-ups
DNS / emulator.
"""
import argparse
import os
import tempfile
import time

import numpy as np
import torch

from hybridsolver import Simulation
from timing import write_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = ["hine_l1", "hine_l2", "hine_l3", "hine_history"]
INTERVAL = 0.05


def seconds_per_call(sim, calls, warm_up=4):
    """Wall seconds per ``advance(1)`` of ``sim`` over ``calls`` calls, after ``warm_up``."""
    sim.advance(warm_up)
    started = time.perf_counter()
    sim.advance(calls)
    return (time.perf_counter() - started) / calls


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None)
    parser.add_argument("--members", type=int, default=64)
    parser.add_argument("--calls", type=int, default=20, help="emulator calls timed")
    parser.add_argument("--dns-intervals", type=int, default=2, help="DNS intervals of 0.05 timed")
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    case = os.path.join(ROOT, "cases", "betaplane64_hine.toml")
    starts = np.load(os.path.join(ROOT, "plugins", "hine", "artifacts", "starts.npy"))
    folder = tempfile.mkdtemp()
    initial = os.path.join(folder, "starts.npy")
    np.save(initial, np.resize(starts, (args.members,) + starts.shape[1:]))  # the starts repeated
    results = {"members": args.members, "threads": args.threads, "interval": INTERVAL}
    print(f"beta-plane jets, {args.members} members, ms per emulator step of {INTERVAL}:")
    for model in args.models:
        sim = Simulation.from_case(case, {"ensemble.members": args.members, "plugins.0.path": model,
                                          "initial_condition.path": initial})
        results[model] = 1e3 * seconds_per_call(sim, args.calls)
        print(f"  {model}: {results[model]:.1f} ms")
    dns = os.path.join(ROOT, "cases", "betaplane_jets256.toml")
    for n, dt in ((128, 1e-3), (256, 2e-4)):
        sim = Simulation.from_case(dns, {"ensemble.members": args.members, "grid.shape": [n, n], "time.dt": dt})
        steps = round(INTERVAL / dt)
        sim.advance(steps)  # JIT warm-up
        started = time.perf_counter()
        sim.advance(steps * args.dns_intervals)
        results[f"dns{n}"] = 1e3 * (time.perf_counter() - started) / args.dns_intervals
        ratios = ", ".join(f"{m} {results[f'dns{n}'] / results[m]:.0f}x" for m in args.models)
        print(f"  DNS {n}^2 (etdrk4, {steps} steps of {dt:g}): {results[f'dns{n}']:.0f} ms; speed-ups {ratios}")
    write_json(results, args.json)


if __name__ == "__main__":
    main()
