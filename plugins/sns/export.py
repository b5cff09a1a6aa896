"""Export trained SNS-family models as hybridsolver artifacts, and the rollouts' starts.

    python -m plugins.sns.export --model unet [--run runs/sns/unet] [--data data/sns]
        [--out plugins/sns/artifacts]
    python -m plugins.sns.export --starts [--count 8] [--horizon 3000] [--data data/sns]

``--model unet`` writes ``unet.pt`` (registered as ``sns_unet``): the pointwise surrogate
as a stateless ``replace`` emulator (:class:`~.emulators.SurrogateEmulator`, float32,
physical vorticity in and out, one emulator step per snapshot interval of the data).
Its manifest carries the data's case and arguments, the training command, seed and
last log line.

``--starts`` writes ``starts.npy``: (count, 64, 64) float64, the test vorticity at the
rollouts' initial conditions (:func:`.data.rollout_starts`: spread over the test
trajectories, each with ``--horizon`` true snapshots after it), which
``cases/kolmogorov64_sns*.toml`` start from (row m is member m's field), and
``starts.json``, the (trajectory, snapshot) of each row.
"""
import argparse
import json
import os
import sys
import tomllib

import numpy as np
import torch

from hybridsolver.case import CaseError
from hybridsolver.plugin import export

from .. import recording
from .data import load_vorticity, rollout_starts
from .emulators import SurrogateEmulator
from .registry import ARTIFACTS
from .train import load_model


def _last_log(run):
    path = os.path.join(run, "log.jsonl")
    with open(path) as f:
        lines = f.read().splitlines()
    return json.loads(lines[-1]) if lines else {}


def manifest(record, meta, log, step_dt):
    """The manifest of the trained surrogate ``record`` (``model.pt``) on data ``meta``."""
    args = record["args"]
    n = meta["coarse_shape"]
    io = [{"field": "vorticity", "space": "physical", "units": "1/time"}]
    return {
        "name": "sns_unet", "version": "1.0", "kind": "emulator", "callsite": "replace",
        "description": ("pointwise UNet surrogate of Kolmogorov flow at Re 1e4 (the SNS paper's baseline): "
                        f"omega_(t+1) = omega_t + Psi(omega_t), one step per {step_dt} of model time"),
        "equation": "navier_stokes2d", "grid": {"shape": list(n), "length": [2 * np.pi, 2 * np.pi]},
        "inputs": io, "outputs": io, "dtype": "float32", "devices": ["cpu", "cuda"], "every": 1,
        "stochastic": False, "noise": [], "sampler": {},
        "provenance": {
            "trained": True, "config": record["config"], "statistics": record["statistics"],
            "torch": record["torch"], "device": record["device"], "emulator_dt": step_dt,
            "command": (f"python -m plugins.sns.train --model {args['model']} --data DATA --config {args['config']} "
                        f"--steps {args['steps']} --batch {args['batch']} --lr {args['lr']} --seed {args['seed']}"),
            "data": {"generator": "python -m plugins.sns.generate", "arguments": meta},
            "training_log": log,
        },
    }


def snapshot_dt(meta):
    """The data's snapshot interval (model time)."""
    return meta["every_steps"] * tomllib.loads(meta["case"])["time"]["dt"]


def export_model(model_name, run, data, out):
    """Write ``<model>.pt``; returns its path."""
    model, record = load_model(os.path.join(run, "model.pt"))
    meta = recording.read_meta(data, "plugins.sns.generate")
    step_dt = snapshot_dt(meta)
    path = os.path.join(out, f"{model_name}.pt")
    export(SurrogateEmulator(model, step_dt), manifest(record, meta, _last_log(run), step_dt), path)
    return path


def export_starts(data, out, count, horizon):
    """Write ``starts.npy`` and ``starts.json``; returns the paths."""
    omega, _, _ = load_vorticity(data, "test")
    starts = rollout_starts(omega.shape[0], omega.shape[1], count, horizon)
    rows = np.stack([omega[trajectory, snapshot] for trajectory, snapshot in starts]).astype(np.float64)
    np.save(os.path.join(out, "starts.npy"), rows)
    with open(os.path.join(out, "starts.json"), "w") as f:
        json.dump({"data": os.path.abspath(data), "horizon": horizon,
                   "starts": [{"test_trajectory": t, "snapshot": s} for t, s in starts]}, f, indent=1)
    return [os.path.join(out, "starts.npy"), os.path.join(out, "starts.json")]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("unet",), help="the model to export")
    parser.add_argument("--starts", action="store_true", help="write the rollouts' initial conditions instead")
    parser.add_argument("--run", help="the train --out folder (default runs/sns/<model>)")
    parser.add_argument("--data", default="data/sns")
    parser.add_argument("--out", default=ARTIFACTS)
    parser.add_argument("--count", type=int, default=8, help="initial conditions (default 8)")
    parser.add_argument("--horizon", type=int, default=3000, help="true snapshots after each start (default 3000)")
    args = parser.parse_args(argv)
    if bool(args.model) == args.starts:
        parser.error("give --model or --starts")
    torch.set_num_threads(1)
    try:
        if args.starts:
            paths = export_starts(args.data, args.out, args.count, args.horizon)
        else:
            paths = [export_model(args.model, args.run or os.path.join("runs", "sns", args.model), args.data,
                                  args.out)]
    except CaseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("\n".join(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
