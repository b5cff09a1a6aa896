"""Device-resident emulator rollouts against the host path, measured in one process.

    python benchmarks/bench_rollout.py [--members 16] [--steps 1000] [--repeats 3]
                                       [--check-every 10] [--device cpu|cuda] [--json results.json]

On the 64^2 box of cases/linear_decay64.toml, ``Simulation.run`` with fields every 100
steps and monitor checks and diagnostics every ``--check-every`` steps (default 10, the
monitor's default), three rollouts:

1. ``linear_decay`` (spectral, float64) replacing the solver every step plus the
   ``band_refiner`` post_step refiner every step (plugins/reference);
2. ``stochastic_relaxation`` (physical, float64, stateful, host noise) every step;
3. a small residual CNN emulator (physical, float32, untrained: u + 1e-3 CNN(u), the
   size of the small CNN closure of bench_hooks) every step, exported to a temporary
   artifact.

Each runs with ``[runtime] resident = true`` and ``false``; printed: ms/step (the
summary's, first step excluded), host round trips and bytes moved (summary.json
``transfers``), the residency speedup, and the ratio to the solver the emulator
replaces (the same case with advection, cn_rk4, no plugin).  Times are minima over
``--repeats`` runs taken in turns (noise only adds time).
"""
import argparse
import os
import sys
import tempfile
from typing import Dict, List

import torch
from torch import nn

from hybridsolver import Simulation
from hybridsolver.case import read_toml
from hybridsolver.plugin import export
from hybridsolver_plugins.classic.closures import SmallCNN
from hybridsolver_plugins.reference.export import manifests
from hybridsolver_plugins.reference.registry import band_refiner, linear_decay, stochastic_relaxation

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import write_json  # noqa: E402

CASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "cases", "linear_decay64.toml")


class ResidualCNN(nn.Module):
    """u + scale * CNN(u): an untrained emulator the size of a small closure network."""

    def __init__(self):
        super().__init__()
        self.net = SmallCNN()

    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float]) -> torch.Tensor:
        return x + self.net(x, noise, options)


def export_cnn(path):
    from hybridsolver.case import load_case

    manifest = manifests(load_case(CASE))["stochastic_relaxation"][1]
    manifest = {k: v for k, v in manifest.items() if k != "state"} | {
        "name": "residual_cnn", "description": "untrained residual CNN emulator (bench_rollout)", "dtype": "float32",
        "stochastic": False, "noise": [], "sampler": {},
        "provenance": {"trained": False, "command": "benchmarks/bench_rollout.py", "seed": 0}}
    torch.manual_seed(0)
    export(ResidualCNN(), manifest, path)
    return path


def case(members, steps, plugins, resident, device, check_every=10):
    raw = read_toml(CASE)
    raw["ensemble"]["members"] = members
    raw["time"]["steps"] = steps
    raw["plugins"] = [p | {"device": device} for p in plugins]
    raw["runtime"] = {"resident": resident}
    raw["output"] = {"fields_every": 100, "diagnostics_every": check_every}
    raw["monitor"] = {"every": check_every}
    return raw


def solver_case(members, steps, check_every):
    raw = case(members, steps, [], True, "cpu", check_every)
    raw["equation"]["advection"] = True
    raw["time"]["scheme"] = "cn_rk4"
    return raw


def run(raw, out):
    summary = Simulation.from_case(raw).run(out_dir=out, progress=False)
    return summary["ms_per_step"], summary["transfers"]


def measure(rollouts, members, steps, repeats, device, check_every, tmp):
    """{rollout: {resident: {ms_per_step, transfers}}, "solver": ms/step}, minima over repeats."""
    best = {}
    for _ in range(repeats):
        ms, _ = run(solver_case(members, steps, check_every), os.path.join(tmp, "solver"))
        best["solver"] = min(best.get("solver", ms), ms)
        for name, plugins in rollouts.items():
            for resident in (True, False):
                raw = case(members, steps, plugins, resident, device, check_every)
                ms, transfers = run(raw, os.path.join(tmp, name))
                entry = best.setdefault(name, {}).setdefault(resident, {"ms_per_step": ms, "transfers": transfers})
                entry["ms_per_step"] = min(entry["ms_per_step"], ms)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=16)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--check-every", type=int, default=10, help="monitor and diagnostics cadence (steps)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rollouts = {
            "linear_decay + band_refiner": [{"path": linear_decay}, {"path": band_refiner}],
            "stochastic_relaxation": [{"path": stochastic_relaxation}],
            "residual CNN (float32)": [{"path": export_cnn(os.path.join(tmp, "cnn.pt"))}],
        }
        best = measure(rollouts, args.members, args.steps, args.repeats, args.device, args.check_every, tmp)
    solver = best.pop("solver")
    print(f"64^2, M = {args.members}, {args.steps} steps, fields every 100, monitor and diagnostics every "
          f"{args.check_every}, "
          f"device {args.device}, torch threads {torch.get_num_threads()}")
    print(f"solver replaced (cn_rk4 with advection): {solver:.3f} ms/step")
    results = {"members": args.members, "steps": args.steps, "device": args.device, "check_every": args.check_every,
               "solver_ms_per_step": solver,
               "rollouts": {}}
    for name, runs in best.items():
        on, off = runs[True], runs[False]
        results["rollouts"][name] = {"resident": on, "host": off, "speedup": off["ms_per_step"] / on["ms_per_step"]}
        for label, r in (("resident", on), ("host path", off)):
            t = r["transfers"]
            print(f"{name:30s} {label:9s} {r['ms_per_step']:.3f} ms/step ({solver / r['ms_per_step']:.2f}x the "
                  f"solver), {t['host_round_trips']} host round trips, {t['bytes_to_device']} B to / "
                  f"{t['bytes_from_device']} B from the device, {t['resident_segments']} resident segments")
        print(f"{name:30s} residency speedup {off['ms_per_step'] / on['ms_per_step']:.2f}x")
    write_json(results, args.json)


if __name__ == "__main__":
    main()
