"""Export trained HINE-family models as hybridsolver artifacts, and the rollouts' starts.

    python -m plugins.hine.export --variant L1|L2|L3|history [--run runs/hine/<variant>] [--data data/hine]
        [--out plugins/hine/artifacts]
    python -m plugins.hine.export --starts [--count 56] [--horizon 100] [--data data/hine]

``--variant V`` writes ``<V>.pt`` (registered as ``hine_<v>``, lower case): the trained
model's EMA weights as a ``replace`` emulator of one step of 0.05 per call
(:class:`~.exported.HierarchicalEmulator`; L1 stateless, the others stateful: their
predicted latents or previous frame), float32, physical vorticity in and out.  The
manifest carries the data's case and arguments, the training command, seed and last log
line.

``--starts`` writes ``starts.npy``: (count, 64, 64) float64, the test vorticity at the
rollouts' initial conditions (:func:`plugins.flow_statistics.rollout_starts`: spread over
the test trajectories, each with ``--horizon`` true snapshots after it), which
``cases/betaplane64_hine.toml`` starts from (row m is member m's field), and
``starts.json``, the (trajectory, snapshot) of each row.
"""
import argparse
import os
import sys

import numpy as np
import torch

from hybridsolver.case import CaseError
from hybridsolver.plugin import export

from .. import recording
from ..training import last_log
from .data import load_vorticity
from .exported import HierarchicalEmulator, StatelessEmulator
from .hierarchy import RATIOS, VARIANTS
from .registry import ARTIFACTS
from .train import load_model

DESCRIPTIONS = {
    "L1": "one-level emulator (the HINE paper's L = 1 baseline): u_(n+1) = f(u_n)",
    "L2": "hierarchical implicit neural emulator, L = 2: (u_(n+1), z1_(n+2)) = f(u_n, z1_(n+1)), z1 the 2x2 "
          "average pooling",
    "L3": "hierarchical implicit neural emulator (Jiang et al.), L = 3: (u_(n+1), z1_(n+2), z2_(n+3)) = "
          "f(u_n, z1_(n+1), z2_(n+2)), z1 and z2 the 2x2 and 8x8 average poolings",
    "history": "two-step-history emulator (the HINE paper's baseline): u_(n+1) = f(u_(n-1), u_n)",
}


def state_keys(variant, n):
    """The manifest's ``state`` of ``variant`` on an n-grid."""
    n1, n2 = n // RATIOS[0], n // RATIOS[1]
    z1 = {"name": "z1", "shape": [1, n1, n1], "dtype": "float32"}
    z2 = {"name": "z2", "shape": [1, n2, n2], "dtype": "float32"}
    previous = {"name": "previous_frame", "shape": [1, n, n], "dtype": "float32"}
    return {"L1": [], "L2": [z1], "L3": [z1, z2], "history": [previous]}[variant]


def command(record):
    args = record["args"]
    return (f"python -m plugins.hine.train --variant {args['variant']} --data DATA --config {args['config']} "
            f"--steps {args['steps']} --batch {args['batch']} --lr {args['lr']} --seed {args['seed']}")


def manifest(record, meta, log, step_dt):
    """The manifest of the trained ``record`` (its ``model.pt``) on data ``meta``."""
    variant, n = record["variant"], record["n"]
    io = [{"field": "vorticity", "space": "physical", "units": "1/time"}]
    keys = {"state": state_keys(variant, n)} if variant != "L1" else {}
    return {
        "name": f"hine_{variant.lower()}", "version": "1.0", "kind": "emulator", "callsite": "replace",
        "description": f"{DESCRIPTIONS[variant]}; beta-plane jet turbulence, one step per {step_dt} of model time",
        "equation": "navier_stokes2d", "grid": {"shape": [n, n], "length": [2 * np.pi, 2 * np.pi]},
        "inputs": io, "outputs": io, "dtype": "float32", "devices": ["cpu", "cuda"], "every": 1,
        "stochastic": False, "noise": [], "sampler": {}, **keys,
        "provenance": {"trained": True, "emulator_dt": step_dt, "scale": record["scale"], "config": record["config"],
                       "command": command(record), "torch": record["torch"], "device": record["device"],
                       "training_log": log,
                       "data": {"generator": "python -m plugins.hine.generate", "arguments": meta}},
    }


def export_variant(variant, run, data, out):
    """Write ``<variant>.pt`` of the run ``run``; returns its path."""
    model, record = load_model(os.path.join(run, "model.pt"))
    if record["variant"] != variant:
        raise CaseError(f"{run}/model.pt: a {record['variant']} model, expected {variant}")
    meta = recording.read_meta(data, "plugins.hine.generate")
    step_dt = float(meta["snapshot_dt"])
    module = HierarchicalEmulator(model, record["scale"], step_dt)
    if variant == "L1":
        module = StatelessEmulator(module)
    path = os.path.join(out, f"{variant}.pt")
    export(module, manifest(record, meta, last_log(run), step_dt), path)
    return path


def export_starts(data, out, count, horizon):
    """Write ``starts.npy`` and ``starts.json`` (:func:`plugins.recording.write_starts`);
    returns the paths."""
    return recording.write_starts(load_vorticity(data, "test")[0], data, out, count, horizon)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=sorted(VARIANTS), help="the model to export")
    parser.add_argument("--starts", action="store_true", help="write the rollouts' initial conditions instead")
    parser.add_argument("--run", help="the train --out folder (default runs/hine/<variant>)")
    parser.add_argument("--data", default="data/hine")
    parser.add_argument("--out", default=ARTIFACTS)
    parser.add_argument("--count", type=int, default=56, help="initial conditions (default 56)")
    parser.add_argument("--horizon", type=int, default=100, help="true snapshots after each start (default 100)")
    args = parser.parse_args(argv)
    if bool(args.variant) == args.starts:
        parser.error("give --variant or --starts")
    torch.set_num_threads(1)
    try:
        if args.starts:
            paths = export_starts(args.data, args.out, args.count, args.horizon)
        else:
            paths = [export_variant(args.variant, args.run or os.path.join("runs", "hine", args.variant), args.data,
                                    args.out)]
    except CaseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("\n".join(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
