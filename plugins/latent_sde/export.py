"""Export trained latent-SDE stages as stateful stochastic emulators (``replace`` artifacts).

    python -m plugins.latent_sde.export --problem kdv --run runs/latent_sde/kdv --data data/kdv
        [--stages 0 5] [--out plugins/latent_sde/artifacts]

(``--problem`` kdv, burgers2d or cylinder.)

writes ``<problem>_eta<N>.pt`` for each stage N (:class:`~.emulator.LatentSDEEmulator`:
physical fields in and out, float64; the latent z as the plugin's state; the host's
noise for the initial draw and the Euler-Maruyama increments; sampler ``substeps``
(default 4) per call) and the first snapshot of the first test trajectory (the observed
fields, noise included), which the emulator cases start from: ``<problem>_test0.npy``
for one field, ``<problem>_test0.nc`` (a variable per field, dims y, x) for several.

The emulator's host is the data's equation (KdV, Burgers: their state is the observed
field u) or, for data on a window of the flow (the cylinder's (u, v), the dataset's
``window_shape``), the ``observed`` equation on that window.
Each manifest carries the data case, the training command and seed, the training log's
last record and the stage's offline test error (``RUN/evaluation.json`` of
:mod:`plugins.latent_sde.evaluate`, made here if missing).
"""
import argparse
import json
import os
import sys

import netCDF4
import numpy as np
import torch

from hybridsolver.case import CaseError
from hybridsolver.plugin import export

from .emulator import LatentSDEEmulator
from .evaluate import evaluate, read_table, update_table
from .model import Config
from .registry import ARTIFACTS
from .train import PROBLEMS, command, data_case, field_names, load_observations, load_stage

SUBSTEPS = 4


def emulator_host(case):
    """(equation name, grid {shape, length}) of the host of an emulator of the data of
    ``case``: the case's own, or the ``observed`` window of a windowed dataset."""
    window = case.get("dataset", {}).get("window_shape")
    if window is None:
        return case["equation"]["name"], {"shape": list(case["grid"]["shape"]), "length": list(case["grid"]["length"])}
    spacing = case["dataset"]["window_spacing"]
    return "observed", {"shape": list(window), "length": [n * h for n, h in zip(window, spacing)]}


def manifest(problem, record, case, metrics, log, fields):
    """The manifest of a stage ``record`` (``eta<N>.pt``) trained on the data of ``case``,
    whose observed ``fields`` (names, the model's channels in order) it reads and returns."""
    config = record["config"]
    n_eta = config["n_eta"]
    n_z = Config(**config).n_zeta + n_eta
    equation, grid = emulator_host(case)
    io = [{"field": name, "space": "physical", "units": "the data's (float64 in and out)"} for name in fields]
    return {
        "name": f"latent_sde_{problem}_eta{n_eta}", "version": "1.0", "kind": "emulator", "callsite": "replace",
        "description": (f"multiscale latent-SDE emulator (Ilersich & Nair) of {problem}, n_eta = {n_eta}: "
                        "each member one sample path of the latent SDE (Euler-Maruyama), the field its "
                        "product-of-experts mean mu_y"),
        "equation": equation, "grid": grid, "inputs": io, "outputs": io, "dtype": "float64",
        "devices": ["cpu", "cuda"], "every": 1,
        "stochastic": True,
        "noise": [{"name": "initial", "shape": [n_z]}, {"name": "increments", "shape": ["substeps", n_z]}],
        "sampler": {"substeps": SUBSTEPS},
        "state": [{"name": "z", "shape": [n_z], "dtype": "float32"}],
        "provenance": {
            "trained": True, "config": config, "torch": torch.__version__,
            "command": command(record["args"]), "init": record.get("init"),
            "data": {"case": case, "generator": "hybridsolver generate"},
            "training_log": log, "offline_metrics": metrics,
        },
    }


def _last_log(run, n_eta):
    path = os.path.join(run, "log.jsonl")
    rows = [json.loads(line) for line in open(path)] if os.path.isfile(path) else []
    rows = [r for r in rows if r["n_eta"] == n_eta]
    return rows[-1] if rows else {}


def export_stages(problem, run, data, stages, out):
    """Write the artifacts of ``stages`` and the start field; returns the paths written."""
    case = data_case(data)
    fields = field_names(data)
    table_path = os.path.join(run, "evaluation.json")
    table = read_table(table_path)
    missing = [n for n in stages if f"eta{n}" not in table]
    if missing:
        table = update_table(table_path, evaluate(run, data, stages=missing))
    paths = []
    for n_eta in stages:
        stage = os.path.join(run, f"eta{n_eta}.pt")
        if not os.path.isfile(stage):
            raise CaseError(f"{stage}: the stage is not trained")
        model, record = load_stage(stage)
        metrics = {"test_error_mean": table[f"eta{n_eta}"]["mean"], "test_error_std": table[f"eta{n_eta}"]["std"],
                   "evaluation": "python -m plugins.latent_sde.evaluate (64 paths, 4 substeps, seed 0)"}
        path = os.path.join(out, f"{problem}_eta{n_eta}.pt")
        export(LatentSDEEmulator(model), manifest(problem, record, case, metrics, _last_log(run, n_eta), fields), path)
        paths.append(path)
    y, _ = load_observations(data, "test")
    return paths + [write_start(os.path.join(out, f"{problem}_test0"), fields, y[0, 0].numpy())]


def write_start(base, fields, y0):
    """Write the start ``y0`` (C, *grid) of ``fields`` (C names): ``base.npy`` for one field,
    ``base.nc`` (a variable per field, dims y, x) for several; returns the path."""
    if len(fields) == 1:
        np.save(f"{base}.npy", y0[0])
        return f"{base}.npy"
    with netCDF4.Dataset(f"{base}.nc", "w") as ds:
        for axis, n in zip(("y", "x"), y0.shape[1:]):
            ds.createDimension(axis, n)
        for name, values in zip(fields, y0):
            ds.createVariable(name, "f8", ("y", "x"))[:] = values
    return f"{base}.nc"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", required=True, choices=sorted(PROBLEMS))
    parser.add_argument("--run", required=True, help="the train --out folder")
    parser.add_argument("--data", required=True, help="the generate folder")
    parser.add_argument("--stages", type=int, nargs="+", default=[0, 5])
    parser.add_argument("--out", default=ARTIFACTS)
    args = parser.parse_args(argv)
    try:
        print("\n".join(export_stages(args.problem, args.run, args.data, args.stages, args.out)))
    except CaseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
