"""Cost of the shipped L-CDM and P-CDM closures, as ratios measured in one process.

    python benchmarks/bench_lcdm.py [--json results.json] [--repeats 5] [--steps 500]
                                    [--members 16] [--threads 2] [--device cpu|cuda]
                                    [--lcdm lcdm] [--pcdm pcdm] [--workers 1]

1. Sampler cost per sample at equal N = 10 steps: each artifact's module called on
   ``--members`` members at once (one sample each), median seconds per sample of
   interleaved repeats, and the ratio P-CDM / L-CDM.
2. Closed loop: ``cases/kolmogorov64_lcdm.toml`` (``--members`` members, closure every
   5 steps) advanced ``--steps`` steps with each artifact, and without a closure (the
   host alone, H = 0): ms per step, the closure's share of the wall time, and the
   wall-time ratio P-CDM / L-CDM, with the plugin's ``workers`` set to ``--workers``
   (1: one call for all members; the case itself runs 2, see ``profile_lcdm.py``).  JIT
   warm-up and the artifacts' dry runs are left out.

``--device cuda`` runs the closures on the GPU (the host stays on the CPU);
``--lcdm`` / ``--pcdm`` name other artifacts (a registered name or a path), such as
``lcdm_paper``.
"""
import argparse
import os
import time

import torch

from hybridsolver import Simulation
from hybridsolver.plugin import resolve
from hybridsolver_plugins.lcdm.evaluate import cost_per_sample, reduced_case
from hybridsolver_plugins.lcdm.registry import ARTIFACTS
from timing import write_json


def closed_loop_seconds(plugin, members, steps, device, workers):
    """(wall seconds of ``steps`` steps, closure seconds) of the reduced case with ``plugin``
    on ``device`` and ``workers``."""
    case = reduced_case(members, os.path.join(ARTIFACTS, "initial_t30.npy"), plugin)
    for entry in case["plugins"]:
        entry["device"], entry["workers"] = device, workers
    sim = Simulation.from_case(case)
    sim.advance(5)  # JIT and the dry run
    before = sum(h.stats.seconds for h in sim.hooks)
    started = time.perf_counter()
    sim.advance(steps)
    return time.perf_counter() - started, sum(h.stats.seconds for h in sim.hooks) - before


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--members", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--lcdm", default="lcdm", help="L-CDM artifact: registered name or path")
    parser.add_argument("--pcdm", default="pcdm", help="P-CDM artifact: registered name or path")
    parser.add_argument("--workers", type=int, default=1, help="the closed loop's plugin workers")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lcdm, pcdm = resolve(args.lcdm), resolve(args.pcdm)
    costs = cost_per_sample({"lcdm": lcdm, "pcdm": pcdm}, batch=args.members, repeats=args.repeats,
                            device=args.device)
    results = {"members": args.members, "threads": args.threads, "workers": args.workers, "device": args.device,
               "artifacts": {"lcdm": lcdm, "pcdm": pcdm},
               "ms_per_sample": {k: 1e3 * v for k, v in costs.items()},
               "sample_cost_ratio_pcdm_over_lcdm": costs["pcdm"] / costs["lcdm"]}
    print(f"sampler, N = 10, {args.members} members per call: L-CDM {1e3 * costs['lcdm']:.2f} ms/sample, "
          f"P-CDM {1e3 * costs['pcdm']:.2f} ms/sample, ratio {results['sample_cost_ratio_pcdm_over_lcdm']:.1f}")
    loop = {}
    for name, plugin in (("none", None), ("lcdm", lcdm), ("pcdm", pcdm)):
        wall, closure = closed_loop_seconds(plugin, args.members, args.steps, args.device, args.workers)
        loop[name] = {"ms_per_step": 1e3 * wall / args.steps, "closure_share": closure / wall}
        print(f"closed loop, {name}: {loop[name]['ms_per_step']:.2f} ms/step, closure share "
              f"{loop[name]['closure_share']:.2f}")
    results["closed_loop"] = loop
    results["closed_loop_wall_ratio_pcdm_over_lcdm"] = loop["pcdm"]["ms_per_step"] / loop["lcdm"]["ms_per_step"]
    print(f"closed-loop wall-time ratio P-CDM / L-CDM: {results['closed_loop_wall_ratio_pcdm_over_lcdm']:.1f}")
    write_json(results, args.json)


if __name__ == "__main__":
    main()
