"""Export a trained L-CDM or P-CDM as a hybridsolver closure artifact.

    python -m plugins.lcdm.export RUN_DIR [--out plugins/lcdm/artifacts/<name>.pt]
                                  [--name lcdm] [--data data/lcdm] [--pairs 1000]
    python -m plugins.lcdm.export --truth [--trajectory 90] [--data data/lcdm]

reads ``RUN_DIR/model.pt`` (:mod:`plugins.lcdm.train`), measures the offline
metrics on the first ``--pairs`` test pairs (:func:`plugins.lcdm.evaluate.offline`),
and writes a TorchScript artifact whose manifest carries the DNS case of the training
data, the training command and log, and those metrics.  The artifact is a
``tendency`` closure for ``navier_stokes2d`` with ``advection = false`` on the 64^2
unit torus: physical vorticity in, the sampled ``H`` out (float32), every 5 steps by
default.  The sampler settings ``steps`` (N = 10), ``samples`` (S = 1; S > 1 averages
S samples per call: the ensemble-mean strategy), ``tau_max`` (0.1), ``tau_min``
(1e-3) and ``rho`` (7) can be overridden per case (``[plugins.sampler]``).

``--truth`` writes the closed-loop start and truth of a test trajectory (default: the
first) into the artifacts folder instead: ``initial_t30.npy``, the initial field of
``cases/kolmogorov64_lcdm.toml``, and ``truth.nc`` (t = 30, 35, ..., 50).
"""
import argparse
import json
import os
import sys

import torch

from hybridsolver.case import CaseError
from hybridsolver.plugin import export

from .data import read_meta, write_truth
from .evaluate import offline
from .models import SAMPLER
from .registry import ARTIFACTS
from .train import load_model

DESCRIPTIONS = {
    "lcdm": "latent conditional diffusion closure (L-CDM): H = -u.grad(omega) + beta xi sampled given omega "
            "in a 16x16 latent space",
    "pcdm": "physical-space conditional diffusion closure (P-CDM): H = -u.grad(omega) + beta xi sampled given "
            "omega on the 64x64 grid",
}


def manifest(name, kind, latent, record, meta, metrics):
    """The artifact manifest of a model record (``model.pt``) trained on ``meta``'s dataset."""
    args = record["args"]
    command = (f"python -m plugins.lcdm.train --model {args['model']} --config {args['config']} "
               f"--epochs {args['epochs']} --batch {args['batch']} --lr {args['lr']} --seed {args['seed']}"
               + (f" --limit {args['limit']}" if args["limit"] else "")
               + (f" --device {record['device']}" if record.get("device", "cpu") != "cpu" else ""))
    return {
        "name": name, "version": "1.0", "kind": "closure", "callsite": "tendency",
        "description": DESCRIPTIONS[kind],
        "equation": "navier_stokes2d",
        "grid": {"shape": [64, 64], "length": [1.0, 1.0]},
        "inputs": [{"field": "vorticity", "space": "physical", "units": "1/time"}],
        "outputs": [{"field": "vorticity", "space": "physical",
                     "units": "1/time^2: H = -u.grad(omega) + beta dW/dt (use with equation.advection = false)"}],
        "dtype": "float32", "devices": ["cpu", "cuda"], "every": 5, "stochastic": True,
        "noise": [{"name": "init", "shape": ["samples", 1, latent, latent]},
                  {"name": "increments", "shape": ["samples", "steps", 1, latent, latent]}],
        "sampler": dict(SAMPLER),
        "provenance": {
            "trained": True, "model": args["model"], "config": record["config"],
            "command": command, "torch": record["torch"],
            "data": {"dns_case": meta["case"], "generator": "python -m plugins.lcdm.generate",
                     "trajectories": record["trajectories"], "pairs": record["pairs"],
                     "coarsening": meta["coarsening"], "record_every_steps": meta["record_every_steps"]},
            "normalisation": {"omega_scale": record["omega_scale"], "h_scale": record["h_scale"]},
            "training_log": record["log"][-1] if record["log"] else {},
            "offline_metrics": metrics,
        },
    }


def export_run(run_dir, out=None, name=None, data="data/lcdm", pairs=1000):
    """Export ``run_dir/model.pt``; returns (artifact path, manifest)."""
    model, record = load_model(os.path.join(run_dir, "model.pt"))
    kind = record["kind"]
    name = name or kind
    out = out or os.path.join(ARTIFACTS, f"{name}.pt")
    metrics = {k: v for k, v in offline(model, data, pairs=pairs).items() if k != "physical_D_RE_pairs"}
    sampler = model.sampler().eval()
    written = export(sampler, manifest(name, kind, sampler.latent, record, read_meta(data), metrics), out)
    return out, written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", help="training run folder (with model.pt)")
    parser.add_argument("--truth", action="store_true", help="write the closed-loop start and truth instead")
    parser.add_argument("--trajectory", type=int, default=None, help="test trajectory of --truth")
    parser.add_argument("--out", default=None)
    parser.add_argument("--name", default=None, help="plugin name (default: lcdm or pcdm)")
    parser.add_argument("--data", default="data/lcdm")
    parser.add_argument("--pairs", type=int, default=1000, help="test pairs for the offline metrics")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not args.truth and args.run_dir is None:
        parser.error("give a RUN_DIR or --truth")
    try:
        if args.truth:
            print("\n".join(write_truth(args.data, ARTIFACTS, args.trajectory)))
            return 0
        path, written = export_run(args.run_dir, args.out, args.name, args.data, args.pairs)
    except CaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    print(json.dumps(written["provenance"]["offline_metrics"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
